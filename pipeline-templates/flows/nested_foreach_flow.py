"""A foreach inside a foreach: start fans out over groups, each group fans out over its items."""
from metaflow import FlowSpec, step


class NestedForeachFlow(FlowSpec):
    @step
    def start(self):
        self.groups = [[1, 2], [3, 4, 5]]
        self.next(self.outer, foreach="groups")

    @step
    def outer(self):
        self.items = self.input
        self.next(self.inner, foreach="items")

    @step
    def inner(self):
        self.square = self.input * self.input
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.group_sum = sum(inp.square for inp in inputs)
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.sums = sorted(inp.group_sum for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("sums:", self.sums)


if __name__ == "__main__":
    NestedForeachFlow()
