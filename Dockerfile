# Vigil's two production images, one per installable part:
#
#   docker build --target orchestrator -t ghcr.io/vigil/orchestrator:0.1.0 .
#       the daemons (`vigil run audio|vrt|minview`, `vigil health`): `pip install .`,
#       no torch, no CUDA; talks to the model server over HTTP.
#   docker build --target model-server -t ghcr.io/vigil/model-server:0.1.0 .
#       TorchServe with the archives (GPU): `pip install .[models]`. Build the archives
#       first (`vigil build` with real checkpoints): archives/ is copied in.

# ---- the orchestrator: slim Python, no model code ---------------------------------------
FROM python:3.11.14-slim-bookworm AS orchestrator

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --gid 10001 vigil \
    && useradd --uid 10001 --gid vigil --no-create-home --home-dir /run/vigil vigil

WORKDIR /opt/vigil
COPY setup.cfg pyproject.toml README.md ./
COPY handlers/ handlers/
COPY modelzoo/ modelzoo/
COPY orchestrator/ orchestrator/
RUN python -m venv /opt/venv && pip install --no-cache-dir .

# The catalogue says which models exist and how to route to them.
COPY archives/catalogue.json archives/
RUN mkdir -p /run/vigil && chown vigil:vigil /run/vigil
USER 10001:10001
WORKDIR /run/vigil
ENV VIGIL_TORCHSERVE_CATALOGUE=/opt/vigil/archives/catalogue.json

EXPOSE 9100 8091
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s CMD ["vigil", "health", "daemon"]
ENTRYPOINT ["vigil"]
CMD ["run", "audio"]

# ---- the model server: CUDA, Java 17, TorchServe, the archives -------------------------
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu22.04 AS model-server

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python 3.11 from deadsnakes (jammy ships a 3.11 release candidate), Java 17 for TorchServe.
# Versions float with the security updates of the base release, on purpose.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
       openjdk-17-jre-headless \
    && apt-get purge -y software-properties-common gpg-agent \
    && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 vigil \
    && useradd --uid 10001 --gid vigil --no-create-home --home-dir /run/vigil vigil

WORKDIR /opt/vigil
COPY setup.cfg pyproject.toml README.md ./
COPY handlers/ handlers/
COPY modelzoo/ modelzoo/
COPY orchestrator/ orchestrator/
# This checkout with its extra: the pins are in setup.cfg.
# hadolint ignore=DL3013
RUN python3.11 -m venv /opt/venv && pip install --no-cache-dir ".[models]"

COPY config.properties ./
COPY archives/ archives/
COPY deploy/docker/entrypoint.sh /usr/local/bin/vigil-entrypoint

# TorchServe writes key_file.json into its working directory; in Kubernetes this directory is
# a volume shared with the daemon of the same pod, so the key never leaves the pod.
RUN mkdir -p /run/vigil && chown vigil:vigil /run/vigil
USER 10001:10001
WORKDIR /run/vigil

EXPOSE 8080 8082
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s \
    CMD ["vigil", "health", "torchserve", "--key-file", "/run/vigil/key_file.json"]
ENTRYPOINT ["vigil-entrypoint"]
CMD ["torchserve"]
