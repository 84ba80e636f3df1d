"""start -> hello -> end, like hello_flow.py, except that hello fails on its first attempt (to see an engine retry it)."""
from metaflow import FlowSpec, current, step


class RetryOnceFlow(FlowSpec):
    @step
    def start(self):
        self.message = "started"
        self.next(self.hello)

    @step
    def hello(self):
        print("hello attempt", current.retry_count, flush=True)
        if current.retry_count == 0:
            raise RuntimeError("hello fails on its first attempt on purpose")
        self.attempt_that_worked = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RetryOnceFlow()
