#!/usr/bin/env bash
# Exits 0 when make image-test can run here; otherwise prints why not (one line) and exits 1. Installs nothing.
set -uo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "it needs root (debootstrap builds the base image, podman runs rootful)"; exit 1
fi
if ! command -v podman >/dev/null && ! command -v apt-get >/dev/null; then
  echo "podman is not installed and there is no apt-get to install it"; exit 1
fi
# Why unshare: containers need mount, PID and network namespaces; an unprivileged sandbox refuses them.
if ! unshare --mount --pid --net --fork true 2>/dev/null; then
  echo "this machine cannot create mount, PID and network namespaces, so podman cannot start containers"; exit 1
fi
exit 0
