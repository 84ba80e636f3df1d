#!/usr/bin/env bash
# make e2e: starts the cluster, imports the agent's image, runs test/e2e with vitest, stops the cluster.
# E2E_KEEP=1 leaves the cluster up afterwards (make e2e-down stops it); extra arguments go to vitest.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$E2E_ROOT"
start=$SECONDS
if [[ "${E2E_KEEP:-}" != 1 ]]; then trap 'scripts/e2e/down.sh' EXIT; fi
scripts/e2e/up.sh
scripts/e2e/images.sh agent
echo "e2e: cluster and images ready in $((SECONDS - start)) s; running test/e2e" >&2
ARGO_CLI="$E2E_ARGO_CLI" E2E_DIR="$E2E_DIR" E2E_KUBECTL="$E2E_KUBE_BIN/kubectl" \
  npx vitest run --config test/e2e/vitest.config.mts "$@"
echo "e2e: done in $((SECONDS - start)) s" >&2
