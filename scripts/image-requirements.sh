#!/usr/bin/env bash
# Keeps image/requirements.txt (hashed, what the image installs) in step with image/runtime-pin.txt.
#   image-requirements.sh lock  [DIR]   resolve DIR/requirements.in into DIR/requirements.txt with hashes (uv, PyPI)
#   image-requirements.sh check [DIR]   fail with one line unless requirements.txt pins exactly the runtime pin, all hashed
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:?lock or check}
dir=${2:-image}
uv=${UV:-.venv/bin/uv}

pin=$(grep -Ev '^\s*(#|$)' "$dir/runtime-pin.txt" | tr -d '[:space:]')
case "$cmd" in
  lock)
    # Why: the image's Python is 3.11 on Linux; resolving for it, not the host, keeps markers right.
    (cd "$dir" && "$OLDPWD/$uv" pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux \
      --no-header requirements.in -o requirements.txt)
    echo "image-requirements: locked $dir/requirements.txt for $pin"
    ;;
  check)
    req=$dir/requirements.txt
    [ -f "$req" ] || { echo "image-requirements: failed to find $req: run make image-lock" >&2; exit 65; }
    if ! grep -qiE "^${pin//./\\.} \\\\\$" "$req"; then
      found=$(grep -iE "^${pin%%=*}==" "$req" | cut -d' ' -f1 || true)
      echo "image-requirements: failed to match $req (${found:-no ${pin%%=*}}) to $dir/runtime-pin.txt ($pin): run make image-lock" >&2
      exit 65
    fi
    unhashed=$(grep -E '^[A-Za-z0-9]' "$req" | grep -v ' \\$' | cut -d' ' -f1 | tr '\n' ' ' || true)
    if [ -n "$unhashed" ]; then
      echo "image-requirements: failed to find hashes in $req for ${unhashed% }: run make image-lock" >&2
      exit 65
    fi
    ;;
  *) echo "image-requirements: failed to understand command $cmd: use lock or check" >&2; exit 64 ;;
esac
