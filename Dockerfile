# EWC Server images, from one Dockerfile. BuildKit is required (`docker buildx`, Docker
# Desktop, or `DOCKER_BUILDKIT=1 docker build` with Debian's docker.io): it builds only the
# stages a target needs and mounts the optional pip settings below.
#
#   docker build --target api -t ewc-server:api .  # API + migrations, no TensorFlow (slim)
#   docker build --target cpu -t ewc-server:cpu .  # CPU worker (tensorflow-cpu), the default
#   docker build --target gpu -t ewc-server:gpu .  # GPU worker (tensorflow[and-cuda]); run it
#                                                  # with the NVIDIA container runtime
#
# Versions come from requirements/lock-*.txt (`make lock` refreshes them), installed before
# the project's wheel: a code change rebuilds only the wheel and the last, small layer.
#
# A private index or a company CA, without editing this file (BuildKit secrets, never stored
# in the image):
#   docker build --secret id=pip_conf,src=./pip.conf --secret id=pip_ca,src=./ca.pem ...
# with `cert = /run/secrets/pip_ca` (and your `index-url`) in that pip.conf.
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

# --- dependencies: one virtualenv per image, from the lock only ------------------------
FROM base AS venv
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

FROM venv AS deps-api
COPY requirements/lock-api.txt /tmp/lock.txt
RUN --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip_ca \
    pip install --no-cache-dir -r /tmp/lock.txt

FROM venv AS deps-cpu
COPY requirements/lock-cpu.txt /tmp/lock.txt
RUN --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip_ca \
    pip install --no-cache-dir -r /tmp/lock.txt

# The GPU build: the CPU lock with TensorFlow's CUDA build of the same version.
FROM venv AS deps-gpu
COPY requirements/lock-cpu.txt /tmp/lock.txt
RUN --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip_ca \
    sed 's/^tensorflow-cpu==/tensorflow[and-cuda]==/' /tmp/lock.txt > /tmp/lock-gpu.txt \
    && pip install --no-cache-dir -r /tmp/lock-gpu.txt

# --- the project itself: one small wheel (what changes with the code) -------------------
FROM venv AS wheel
COPY pyproject.toml README.md ./
COPY api ./api
COPY continual_core ./continual_core
COPY cli ./cli
COPY client ./client
COPY common ./common
COPY migrations ./migrations
COPY store ./store
COPY worker ./worker
RUN --mount=type=secret,id=pip_conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip_ca \
    pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /srv/ewc

# --- runtime images: the virtualenv only, run as the unprivileged `ewc` user -----------
# No VOLUME: compose names every volume (an anonymous one would be left behind per `up`).
FROM base AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    EWC_DATA_DIR=/var/lib/ewc \
    EWC_DATASET_CACHE=/var/lib/ewc/datasets \
    EWC_ARTIFACTS_DIR=/var/lib/ewc/artifacts \
    EWC_HOST=0.0.0.0 \
    EWC_PORT=8000

# Each image: its locked dependencies (a layer that changes only with the lock), then the
# project's wheel with --no-deps (the only layer a code change rebuilds).
# The API and `ewc migrate`: no TensorFlow, a fraction of the worker image's size.
FROM runtime AS api
COPY --from=deps-api /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps --no-index /wheels/ewc_server-*.whl
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
USER 10001:10001
CMD ["ewc", "api"]

# Workers: healthy while their presence heartbeat (every EWC_HEARTBEAT_S) reaches the database.
FROM runtime AS worker
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, tempfile, time; sys.exit(time.time() - os.path.getmtime(os.path.join(tempfile.gettempdir(), 'ewc-worker.alive')) > 60)"]

FROM worker AS gpu
COPY --from=deps-gpu /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps --no-index /wheels/ewc_server-*.whl
USER 10001:10001
CMD ["ewc", "worker", "--queue", "gpu"]

# The default target (last stage): the CPU worker.
FROM worker AS cpu
COPY --from=deps-cpu /opt/venv /opt/venv
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps --no-index /wheels/ewc_server-*.whl
USER 10001:10001
CMD ["ewc", "worker", "--queue", "cpu"]
