"""The seed's foreach flow: start fans out over four titles, explore runs once per title, join collects."""
from metaflow import FlowSpec, step


class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.titles = ["Stranger Things", "House of Cards", "Narcos", "Suburra"]
        self.next(self.explore, foreach="titles")

    @step
    def explore(self):
        self.title = self.input
        self.letters = len(self.title)
        print("exploring", self.title)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = sorted(inp.title.upper() for inp in inputs)
        self.total_letters = sum(inp.letters for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("results:", self.results, "letters:", self.total_letters)


if __name__ == "__main__":
    ForeachFlow()
