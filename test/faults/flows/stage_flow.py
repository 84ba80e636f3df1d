"""The fault suite's flow: start prints a marker, then optionally sleeps or floods its output; end checks start's artifact.

FAULT_SLEEP=<s> keeps start busy so a test can signal it; FAULT_PRINT_BYTES=<n> with
FAULT_LINE_BYTES=<m> prints n bytes in lines of m bytes (one line when m >= n);
FAULT_INIT_SLEEP=<s> keeps Metaflow's `init` command busy (the module runs for every command).
The `payload` parameter takes any text, so a test can pass a huge one.
"""
import os
import sys
import time

from metaflow import FlowSpec, Parameter, step

if "init" in sys.argv and os.environ.get("FAULT_INIT_SLEEP"):
    print("INIT-WAITING", flush=True)
    time.sleep(float(os.environ["FAULT_INIT_SLEEP"]))


class StageFlow(FlowSpec):
    payload = Parameter("payload", default="", help="any text; the exhaustion cases pass a huge one")

    @step
    def start(self):
        print("STEP-STARTED", flush=True)
        total = int(os.environ.get("FAULT_PRINT_BYTES", "0"))
        if total:
            width = int(os.environ.get("FAULT_LINE_BYTES", "100"))
            line = ("x" * (width - 1) + "\n").encode()
            out = sys.stdout.buffer
            written = 0
            while written + len(line) <= total:
                out.write(line)
                written += len(line)
            out.flush()
            print("PRINTED", written, flush=True)
        time.sleep(float(os.environ.get("FAULT_SLEEP", "0")))
        self.answer = 42
        self.next(self.end)

    @step
    def end(self):
        assert self.answer == 42
        print("STEP-ENDED", flush=True)


if __name__ == "__main__":
    StageFlow()
