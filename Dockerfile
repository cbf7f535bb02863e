# Two images, both built by the same install script that CI and `make demo`
# run (scripts/install.sh), so that they cannot drift:
#
#   target gnuhealth: trytond with GNU Health 5.0, health_radiology and SAO
#   target orthanc (the default, last): Orthanc with the GNU Health plugin
#
#   docker build -t orthanc-gnuhealth .
#   docker run -p 8042:8042 -p 4242:4242 \
#       -v /path/to/orthanc.json:/etc/orthanc/orthanc.json:ro orthanc-gnuhealth
#
# Start from orthanc.json.example: it documents every "GnuHealth" key.
# compose.yaml runs both images with PostgreSQL (README, "Production").
# The entry point reads NAME_FILE secrets into NAME (scripts/docker-entrypoint.sh).
FROM debian:bookworm-slim AS gnuhealth

# SAO_DIR: where install.sh puts SAO, trytond's [web] root (deploy/trytond.conf).
ENV VENV=/opt/orthanc-gnuhealth/venv SAO_DIR=/opt/orthanc-gnuhealth/sao
COPY . /opt/orthanc-gnuhealth/src
RUN bash /opt/orthanc-gnuhealth/src/scripts/install.sh --gnuhealth-only "$VENV" \
    && rm -rf /var/lib/apt/lists/* /root/.npm /root/.cache

EXPOSE 8000
VOLUME /var/lib/trytond
ENTRYPOINT ["bash", "/opt/orthanc-gnuhealth/src/scripts/docker-entrypoint.sh"]
CMD ["gnuhealth"]

FROM debian:bookworm-slim AS orthanc

# TCP_NODELAY: dcmtk, under Orthanc's DICOM side, waits ~40-90 ms per
# message without it (C-STORE and worklist C-FIND answers).
# OHIF_DIR: where install.sh puts the OHIF viewer, the folder that
# orthanc.json.example's "ServeFolders" serves at /ohif.
ENV VENV=/opt/orthanc-gnuhealth/venv OHIF_DIR=/opt/orthanc-gnuhealth/ohif TCP_NODELAY=1
COPY . /opt/orthanc-gnuhealth/src
RUN bash /opt/orthanc-gnuhealth/src/scripts/install.sh --plugin-only "$VENV" \
    && rm -rf /var/lib/apt/lists/* /root/.npm /root/.cache /etc/orthanc/*.json \
    && cp /opt/orthanc-gnuhealth/src/orthanc.json.example /etc/orthanc/orthanc.json

EXPOSE 4242 8042
VOLUME /var/lib/orthanc/db
ENTRYPOINT ["bash", "/opt/orthanc-gnuhealth/src/scripts/docker-entrypoint.sh"]
CMD ["Orthanc", "/etc/orthanc/"]
