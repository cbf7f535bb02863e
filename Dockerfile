# Orthanc with the GNU Health plugin, built by the same install script that
# CI and `make demo` run (scripts/install.sh), so the image cannot drift.
#
#   docker build -t orthanc-gnuhealth .
#   docker run -p 8042:8042 -p 4242:4242 \
#       -v /path/to/orthanc.json:/etc/orthanc/orthanc.json:ro orthanc-gnuhealth
#
# Start from orthanc.json.example: it documents every "GnuHealth" key.
FROM debian:bookworm-slim

ENV VENV=/opt/orthanc-gnuhealth/venv
COPY . /opt/orthanc-gnuhealth/src
RUN bash /opt/orthanc-gnuhealth/src/scripts/install.sh --plugin-only "$VENV" \
    && rm -rf /var/lib/apt/lists/* /etc/orthanc/*.json \
    && cp /opt/orthanc-gnuhealth/src/orthanc.json.example /etc/orthanc/orthanc.json

EXPOSE 4242 8042
VOLUME /var/lib/orthanc/db
ENTRYPOINT ["Orthanc", "/etc/orthanc/"]
