"""A flow with parameters of several types, read in start and carried to end."""
from metaflow import FlowSpec, JSONType, Parameter, step


class ParamsFlow(FlowSpec):
    alpha = Parameter("alpha", help="a learning rate", type=float, default=0.5)
    who = Parameter("who", help="who to greet", default="world")
    count = Parameter("count", help="how many repeats", type=int, default=2)
    config = Parameter("config", help="a JSON object", type=JSONType, default='{"depth": 3}')

    @step
    def start(self):
        self.greeting = ("hello %s " % self.who) * self.count
        self.scaled = self.alpha * self.config["depth"]
        self.next(self.end)

    @step
    def end(self):
        print(self.greeting.strip(), self.scaled)


if __name__ == "__main__":
    ParamsFlow()
