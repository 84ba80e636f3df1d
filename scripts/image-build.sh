#!/usr/bin/env bash
# Builds the Dockerfile with docker or podman, whichever is present and answers.
# Environment: IMAGE (name:tag), BASE_IMAGE and NODE_IMAGE (when set, passed as build args),
# ENGINE (docker|podman, to choose), PODMAN_RUNTIME (e.g. runc), BUILD_NETWORK (e.g. host).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${IMAGE:?IMAGE=name:tag}

engine=${ENGINE:-}
if [ -z "$engine" ]; then
  if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then engine=docker
  elif command -v podman >/dev/null; then engine=podman
  else
    echo "image: failed to find a container engine: install Docker (with a running daemon) or podman" >&2
    exit 69
  fi
fi

cmd=("$engine")
if [ "$engine" = podman ] && [ -n "${PODMAN_RUNTIME:-}" ]; then cmd+=(--runtime "$PODMAN_RUNTIME"); fi
cmd+=(build -f Dockerfile -t "$image")
[ -z "${BUILD_NETWORK:-}" ] || cmd+=(--network "$BUILD_NETWORK")
[ -z "${BASE_IMAGE:-}" ] || cmd+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[ -z "${NODE_IMAGE:-}" ] || cmd+=(--build-arg "NODE_IMAGE=$NODE_IMAGE")
cmd+=(--build-arg "VERSION=$(node -p 'require("./package.json").version')")
cmd+=(--build-arg "RUNTIME_PIN=$(grep -Ev '^\s*(#|$)' image/runtime-pin.txt | tr -d '[:space:]')")
cmd+=(.)

echo "image: ${cmd[*]}"
start=$SECONDS
# Why BuildKit: the Dockerfile mounts the wheelhouse with RUN --mount instead of copying it into a layer.
DOCKER_BUILDKIT=1 "${cmd[@]}"
echo "image: built $image with $engine in $((SECONDS - start)) s"
