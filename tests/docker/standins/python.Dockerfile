# Stand-in for python:3.11-slim-bookworm (Docker Hub is out of reach in CI): Debian's own
# python3.11 with venv, `python` on PATH as in the official image.
FROM ewc-standin/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-venv ca-certificates \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python3 \
    && rm -rf /var/lib/apt/lists/*
LABEL ewc.standin="python:3.11-slim-bookworm"
CMD ["python3"]
