"""A flow whose start step prints five numbered lines, then sleeps far longer than any deadline the test gives it."""
import time

from metaflow import FlowSpec, step


class DeadlineFlow(FlowSpec):
    @step
    def start(self):
        for i in range(5):
            print(f"line {i} before the deadline", flush=True)
            # Why apart: `flow.py logs` orders lines of the same millisecond by their random ids, not as printed.
            time.sleep(0.1)
        time.sleep(600)
        print("woke up after the deadline", flush=True)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DeadlineFlow()
