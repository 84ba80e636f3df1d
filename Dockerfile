# The step image: tini as PID 1, the bundled agent as entrypoint, the pinned Metaflow and boto3 baked into a venv.
# Build with `make image` (it prepares dist/, image/wheels and image/debs); the build itself downloads nothing
# except tini when image/debs holds no .deb. Needs BuildKit (Docker 23+) or podman/buildah for RUN --mount.
ARG BASE_IMAGE=python:3.11-slim-bookworm
# Why a stage: the official node image carries a node built for the same Debian release and CPU as the base;
# offline, make points NODE_IMAGE at a local image holding this machine's node at the same path.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS node

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG RUNTIME_PIN=unknown

# PID 1: tini forwards SIGTERM to the agent and reaps orphans a step leaves behind.
RUN --mount=type=bind,source=image/debs,target=/tmp/debs \
    set -eu; \
    if ls /tmp/debs/tini_*.deb >/dev/null 2>&1; then dpkg -i /tmp/debs/tini_*.deb; \
    else apt-get update; apt-get install -y --no-install-recommends tini; rm -rf /var/lib/apt/lists/*; fi; \
    tini --version

# The runtime: a venv without pip, filled from the wheelhouse against the hashes, so nothing is fetched at run time.
RUN --mount=type=bind,source=image,target=/tmp/image \
    python3 -m venv --without-pip /opt/metaflow \
 && python3 -m pip --python /opt/metaflow/bin/python install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
      --no-index --find-links /tmp/image/wheels --require-hashes --only-binary=:all: -r /tmp/image/requirements.txt \
 && /opt/metaflow/bin/python -c "import metaflow, boto3"

COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY dist/metaflow-kfp /usr/local/bin/metaflow-kfp

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin metaflow \
 && node --version && metaflow-kfp --version

# Warm-up steps of a tiny flow write V8's code cache beside the agent and the runtime marker into the venv,
# so a task neither compiles the bundle nor starts Python to find the pin (README, Benchmark).
RUN --mount=type=bind,source=scripts/image-warm-up.sh,target=/tmp/image-warm-up.sh sh /tmp/image-warm-up.sh

# METAFLOW_KFP_WARM_PYTHON: the agent starts this Python first thing for a step, so its start and
# early imports overlap Node's (agent/step/warm-python.py); unset it to start Python only when needed.
ENV PATH=/opt/metaflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/metaflow \
    METAFLOW_KFP_WARM_PYTHON=/opt/metaflow/bin/python3
USER 1000:1000
WORKDIR /home/metaflow

LABEL org.opencontainers.image.title="metaflow-kfp" \
      org.opencontainers.image.description="Runs one Metaflow step per Kubeflow Pipelines task" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      metaflow-kfp.runtime="${RUNTIME_PIN}"

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/metaflow-kfp"]
CMD ["--help"]
