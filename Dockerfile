# One image for every process: the Dagster code server (and the runs it starts), the Dagster
# webserver and daemon, the download API, and the `recordings` command (migrations).
#
#   docker build -t daily-conversation-audio-recordings:0.1.0 .
#
# The process is chosen by the command (see docker-compose.yml, deploy/helm, deploy/k8s).

# --- build: the project's wheel ------------------------------------------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY recordings ./recordings
COPY recordings_dagster ./recordings_dagster
COPY recordings_api ./recordings_api
COPY recordings_instance ./recordings_instance
COPY recordings_cli ./recordings_cli
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime -------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The Opus encoder binds the system's libopus and libogg through ctypes
# (recordings/audio/native.py);
# libsndfile comes inside the soundfile wheel. The same runtime libraries as `make install`.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libopus0 libogg0 \
    && rm -rf /var/lib/apt/lists/*

# Exactly the versions the tests ran with (constraints.txt). The k8s extra (dagster-k8s) is what
# run pods need when the Helm chart's instance names the K8sRunLauncher; the celery extra
# (dagster-celery, Redis client) is what the daemon and the workers need when the instance names
# the CeleryRunLauncher (deploy/compose.celery.yml). Each is unused elsewhere.
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /tmp/wheels
RUN pip install -c /tmp/constraints.txt "$(ls /tmp/wheels/*.whl)[k8s,celery]" \
    && rm -rf /tmp/wheels /tmp/constraints.txt

# The production Dagster instance (PostgreSQL, queued runs, retries, run monitoring) and the
# workspace that loads the code location from the code server. storage/ holds compute logs and
# local artefacts; docker-compose.yml shares it between the Dagster services.
# A run plans its partitions in one event, not one per partition (recordings_instance).
ENV DAGSTER_HOME=/opt/dagster/home \
    DAGSTER_MAX_CONCURRENT_RUNS=2 \
    DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true
COPY deploy/dagster.prod.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/home/workspace.yaml

RUN groupadd --system --gid 10001 recordings \
    && useradd --system --uid 10001 --gid recordings --create-home --home-dir /home/recordings \
        --shell /usr/sbin/nologin recordings \
    && mkdir -p /opt/dagster/home/storage \
    && chown -R recordings:recordings /opt/dagster/home/storage

USER 10001:10001
WORKDIR /home/recordings

EXPOSE 3000 4000 8000
CMD ["recordings", "--help"]
