#!/usr/bin/env bash
# containerd's runc on machines whose root lacks CAP_SYS_RESOURCE: clamps a container's oom_score_adj and RLIMIT_NOFILE to what runc may set.
# Why: the kubelet asks for oom_score_adj -998 on sandboxes and containerd for a high RLIMIT_NOFILE; without
# CAP_SYS_RESOURCE runc cannot apply either and fails with "can't get final child's PID from pipe: EOF".
# Installed by scripts/e2e/up.sh only when the capability is missing.
set -euo pipefail
RUNC=${E2E_REAL_RUNC:-/usr/sbin/runc}

bundle=""
is_create=0
prev=""
for arg in "$@"; do
  case "$arg" in
    create | run) is_create=1 ;;
    --bundle=*) bundle=${arg#--bundle=} ;;
  esac
  if [[ "$prev" == "--bundle" || "$prev" == "-b" ]]; then bundle=$arg; fi
  prev=$arg
done

if [[ $is_create == 1 ]]; then
  config="${bundle:-.}/config.json"
  if [[ -f "$config" ]]; then
    min_oom=$(cat /proc/self/oom_score_adj)
    max_nofile=$(ulimit -Hn)
    [[ "$max_nofile" == unlimited ]] && max_nofile=1073741816
    tmp="$config.clamp.$$"
    jq --argjson min "$min_oom" --argjson max "$max_nofile" '
      (if (.process.oomScoreAdj // null) != null and .process.oomScoreAdj < $min then .process.oomScoreAdj = $min else . end)
      | (if .process.rlimits then .process.rlimits |= map(
          if .type == "RLIMIT_NOFILE" then .hard = ([.hard, $max] | min) | .soft = ([.soft, .hard] | min) else . end) else . end)
    ' "$config" > "$tmp" && mv "$tmp" "$config"
  fi
fi
exec "$RUNC" "$@"
