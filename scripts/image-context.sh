#!/usr/bin/env bash
# Prepares what the Dockerfile reads besides the bundle, so the build itself needs no network:
# image/wheels (the hashed requirements, downloaded for the image's Python and CPU) and image/debs
# (Debian's tini .deb, when this machine runs the base image's Debian release).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
py_version=${IMAGE_PYTHON_VERSION:-3.11}
codename=${IMAGE_DEBIAN:-bookworm}

scripts/image-requirements.sh check

case "${IMAGE_ARCH:-$(uname -m)}" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) echo "image-context: failed to pick wheels for CPU $(uname -m): set IMAGE_ARCH to x86_64 or aarch64" >&2; exit 64 ;;
esac

# The wheelhouse: fetched again only when the requirements, the Python or the CPU change.
stamp="$(sha256sum image/requirements.txt | cut -d' ' -f1) $py_version $arch"
if [ "$(cat image/wheels/.stamp 2>/dev/null)" != "$stamp" ]; then
  rm -rf image/wheels
  mkdir -p image/wheels
  abi=cp${py_version//./}
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: \
    --python-version "$py_version" --implementation cp --abi "$abi" --abi abi3 --abi none \
    --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" --platform "manylinux_2_28_$arch" --platform any \
    -d image/wheels -r image/requirements.txt
  echo "$stamp" > image/wheels/.stamp
  echo "image-context: downloaded $(ls image/wheels/*.whl | wc -l) wheels for Python $py_version on $arch"
fi

# tini: a .deb from this machine's apt when it is the base's release; otherwise the build installs it with apt-get.
mkdir -p image/debs
if ! ls image/debs/tini_*.deb >/dev/null 2>&1; then
  # shellcheck disable=SC1091
  here=$( . /etc/os-release 2>/dev/null && echo "${ID:-}-${VERSION_CODENAME:-}" || true)
  if [ "$here" = "debian-$codename" ] && command -v apt-get >/dev/null; then
    (cd image/debs && apt-get download -qq tini 2>/dev/null) \
      || echo "image-context: could not download tini with apt-get; the build will apt-get install it (needs network)" >&2
  else
    echo "image-context: this machine is not Debian $codename; the build will apt-get install tini (needs network)" >&2
  fi
fi
ls image/debs/tini_*.deb 2>/dev/null || true
