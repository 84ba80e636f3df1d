"""A static split and join: start -> (left, right) -> join -> end."""
from metaflow import FlowSpec, step


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.base = 10
        self.next(self.left, self.right)

    @step
    def left(self):
        self.value = self.base + 1
        self.next(self.join)

    @step
    def right(self):
        self.value = self.base * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(inp.value for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("values:", self.values)


if __name__ == "__main__":
    BranchFlow()
