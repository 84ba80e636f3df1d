"""The bench's wide foreach: as many splits as its width Parameter, with foreach_flow.py's step names so its templates run it."""
from metaflow import FlowSpec, Parameter, step


class BenchWideForeachFlow(FlowSpec):
    width = Parameter("width", help="how many splits", type=int, default=100)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.explore, foreach="items")

    @step
    def explore(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(inp.square for inp in inputs)
        self.count = len(list(inputs))
        self.next(self.end)

    @step
    def end(self):
        print("count:", self.count, "total:", self.total)


if __name__ == "__main__":
    BenchWideForeachFlow()
