#!/usr/bin/env bash
# make image-test: builds the Dockerfile with podman on a debootstrap base, runs the container suite, prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."

CONTAINERS_CONF=$(scripts/podman-env.sh)
# Why runc: the default crun fails on setrlimit in these sandboxes.
export CONTAINERS_CONF PODMAN_RUNTIME=runc
export IMAGE=${IMAGE_TEST:-localhost/metaflow-kfp:test}
base=${TEST_BASE_IMAGE:-localhost/metaflow-kfp-base:bookworm}
node_image=localhost/metaflow-kfp-node:$(node --version)

scripts/image-base.sh "$base" "$node_image"
scripts/image-context.sh
ENGINE=podman BUILD_NETWORK=host BASE_IMAGE=$base NODE_IMAGE=$node_image scripts/image-build.sh
npx vitest run --config test/image/vitest.config.mts

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image-test: $IMAGE is $((size / 1000000)) MB; its layers:"
podman history --no-trunc --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" \
  | sed -E 's/\|[0-9]+ ([A-Z_]+=[^ ]* )*//; s@/bin/sh -c (#\(nop\) )?@@' | awk -F'\t' '$1 != "0 B" {print "  " $1 "\t" substr($2, 1, 100)}'
