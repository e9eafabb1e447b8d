# Stand-in for minio/minio (Docker Hub is out of reach in CI, and no registry here ships a
# MinIO binary): moto's S3 server behind MinIO's command line (`server DIR --address :9000
# --console-address :9001`), its entrypoint, and an `mc` that answers only `mc ready local`
# (the compose file's healthcheck). Credentials (MINIO_ROOT_USER / MINIO_ROOT_PASSWORD) are
# accepted and not checked: moto verifies no signature. moto keeps buckets in memory; the
# stand-in records every request under DIR and replays them at start, so a bucket survives
# `docker compose down` / `up` on its volume as MinIO's does (minio-standin.py). No console.
# moto with its S3 extra and the two packages its server needs (its `server` extra would add
# every other service's, ≈ 280 MB); pip runs with this machine's settings as the BuildKit
# secrets `pip_conf` / `pip_ca`.
FROM python:3.11-slim-bookworm
ARG MOTO_VERSION=5.2.5
RUN --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip_ca \
    python -m venv /opt/moto \
    && /opt/moto/bin/pip install --no-cache-dir "moto[s3]==${MOTO_VERSION}" flask flask-cors \
    && mkdir -p /data
COPY minio-standin.py /opt/minio-standin.py
COPY minio-entrypoint.sh /usr/bin/docker-entrypoint.sh
COPY mc-standin.py /usr/bin/mc
RUN printf '#!/bin/sh\nexec /opt/moto/bin/python /opt/minio-standin.py "$@"\n' > /usr/bin/minio \
    && chmod 755 /usr/bin/minio /usr/bin/mc /usr/bin/docker-entrypoint.sh
# MinIO serves path-style URLs (http://minio:9000/<bucket>/<key>) whatever the host name.
ENV S3_IGNORE_SUBDOMAIN_BUCKETNAME=true
LABEL ewc.standin="minio/minio"
EXPOSE 9000 9001
ENTRYPOINT ["/usr/bin/docker-entrypoint.sh"]
CMD ["minio"]
