# Vigil production image. One image, two roles chosen by the command:
#   torchserve            the model server (GPU), serving the archives baked into the image
#   run audio|vrt|minview a Vigil daemon (or any other `vigil` command)
# Build the archives first (`vigil build` with real checkpoints): archives/ is copied in.
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    VIGIL_ROLE=torchserve

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
RUN python3.11 -m venv /opt/venv && pip install --no-cache-dir .

COPY config.properties ./
COPY archives/ archives/
COPY deploy/docker/entrypoint.sh /usr/local/bin/vigil-entrypoint

# TorchServe writes key_file.json into its working directory; in Kubernetes this directory is
# a volume shared with the daemon of the same pod, so the key never leaves the pod.
RUN mkdir -p /run/vigil && chown vigil:vigil /run/vigil
USER 10001:10001
WORKDIR /run/vigil

EXPOSE 8080 8082 9100
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s \
    CMD ["sh", "-c", "vigil health \"$VIGIL_ROLE\" --key-file /run/vigil/key_file.json"]
ENTRYPOINT ["vigil-entrypoint"]
CMD ["torchserve"]
