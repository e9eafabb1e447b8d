# EWC Server image: the API, the migrations and the workers, from one Dockerfile.
#
#   docker build -t ewc-server:cpu .               # CPU (tensorflow-cpu), the default target
#   docker build -t ewc-server:gpu --target gpu .  # GPU (tensorflow[and-cuda]); run it with
#                                                  # the NVIDIA container runtime
# Nothing here is secret: settings come from EWC_* environment variables at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- base: the runtime user and folders ------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2
RUN groupadd --system --gid 10001 ewc \
    && useradd --system --uid 10001 --gid ewc --home-dir /home/ewc --create-home ewc \
    && mkdir -p /var/lib/ewc/datasets /var/lib/ewc/artifacts \
    && chown -R ewc:ewc /var/lib/ewc
WORKDIR /srv/ewc

# --- build: a virtualenv with the project and one TensorFlow build ---------------------
FROM base AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY api ./api
COPY continual_core ./continual_core
COPY ewc ./ewc
COPY migrations ./migrations
COPY store ./store
COPY worker ./worker

FROM build AS build-cpu
RUN pip install --no-cache-dir "/srv/ewc[cpu]"

FROM build AS build-gpu
RUN pip install --no-cache-dir "/srv/ewc[gpu]"

# --- runtime images: the virtualenv only, run as the unprivileged `ewc` user -----------
FROM base AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    EWC_DATA_DIR=/var/lib/ewc \
    EWC_DATASET_CACHE=/var/lib/ewc/datasets \
    EWC_ARTIFACTS_DIR=/var/lib/ewc/artifacts \
    EWC_HOST=0.0.0.0 \
    EWC_PORT=8000
EXPOSE 8000
VOLUME ["/var/lib/ewc"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["ewc", "api"]

FROM runtime AS gpu
COPY --from=build-gpu /opt/venv /opt/venv
USER 10001:10001

# The default target (last stage): CPU.
FROM runtime AS cpu
COPY --from=build-cpu /opt/venv /opt/venv
USER 10001:10001
