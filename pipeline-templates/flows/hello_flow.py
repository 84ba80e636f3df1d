"""A linear flow: start -> hello -> end."""
from metaflow import FlowSpec, step


class HelloFlow(FlowSpec):
    @step
    def start(self):
        self.message = "Metaflow says hi"
        self.next(self.hello)

    @step
    def hello(self):
        self.message = self.message + " from KFP"
        print(self.message)
        self.next(self.end)

    @step
    def end(self):
        print("done:", self.message)


if __name__ == "__main__":
    HelloFlow()
