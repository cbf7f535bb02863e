# Orthanc with the GNU Health plugin, built by the same install script that
# CI and `make demo` run (scripts/install.sh), so the image cannot drift.
#
#   docker build -t orthanc-gnuhealth .
#   docker run -p 8042:8042 -p 4242:4242 \
#       -v /path/to/orthanc.json:/etc/orthanc/orthanc.json:ro orthanc-gnuhealth
#
# Start from orthanc.json.example: it documents every "GnuHealth" key.
FROM debian:bookworm-slim

# TCP_NODELAY: dcmtk, under Orthanc's DICOM side, waits ~40-90 ms per
# message without it (C-STORE and worklist C-FIND answers).
# OHIF_DIR: where install.sh puts the OHIF viewer, the folder that
# orthanc.json.example's "ServeFolders" serves at /ohif.
ENV VENV=/opt/orthanc-gnuhealth/venv OHIF_DIR=/opt/orthanc-gnuhealth/ohif TCP_NODELAY=1
COPY . /opt/orthanc-gnuhealth/src
RUN bash /opt/orthanc-gnuhealth/src/scripts/install.sh --plugin-only "$VENV" \
    && rm -rf /var/lib/apt/lists/* /etc/orthanc/*.json \
    && cp /opt/orthanc-gnuhealth/src/orthanc.json.example /etc/orthanc/orthanc.json

EXPOSE 4242 8042
VOLUME /var/lib/orthanc/db
ENTRYPOINT ["Orthanc", "/etc/orthanc/"]
