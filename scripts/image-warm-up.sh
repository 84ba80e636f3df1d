#!/bin/sh
# Run by the Dockerfile at image build: steps of a tiny flow, as the image's tasks run, leave V8's code
# cache beside the agent and the runtime marker in the venv; a last step must use both, or the build fails.
set -eu
export PATH=/opt/metaflow/bin:$PATH METAFLOW_USER=image-build
w=$(mktemp -d)
cat > "$w/warm_flow.py" <<'PY'
from metaflow import FlowSpec, step


class WarmFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WarmFlow()
PY
step() {
  metaflow-kfp step start --code-url "file://$w/warm_flow.py" --datastore-root "$w/.metaflow" --run-id warm \
    --task-id "$1" --output-dir "$w/out-$1" >"$w/$1.log" 2>&1 || { cat "$w/$1.log" >&2; exit 1; }
}
# First the code cache: written when the agent exits, with what this whole step compiled.
METAFLOW_KFP_WRITE_CODE_CACHE=1 step cache
# The writer also compiles and caches every lazy package group, though this local step loads no AWS SDK:
# an S3 task must find that one.
[ -s "$(command -v metaflow-kfp).aws.v8cache" ] || { cat "$w/cache.log" >&2; echo "image: the AWS SDK's code cache was not written" >&2; exit 1; }
# Then the marker, after anything the first step wrote into the venv (__pycache__).
METAFLOW_KFP_WRITE_RUNTIME_MARKER=1 step marker
METAFLOW_KFP_TIMINGS=1 step check
grep -q "the image's runtime marker" "$w/check.log" || { cat "$w/check.log" >&2; echo "image: the runtime marker was not used" >&2; exit 1; }
grep -q 'code-cache=used' "$w/check.log" || { cat "$w/check.log" >&2; echo "image: the code cache was not used" >&2; exit 1; }
# And a step in the prestarted Python the image's METAFLOW_KFP_WARM_PYTHON asks for.
METAFLOW_KFP_WARM_PYTHON=/opt/metaflow/bin/python3 step prestarted
grep -q 'the step runs in the prestarted Python' "$w/prestarted.log" || { cat "$w/prestarted.log" >&2; echo "image: the prestarted Python did not run the step" >&2; exit 1; }
grep -h 'wrote the runtime marker\|timings:' "$w/marker.log" "$w/check.log"
rm -rf "$w"
