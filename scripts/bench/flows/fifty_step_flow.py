"""The bench's 50-step flow for timing generate: a linear run, a 10-way static split and a foreach with a 12-step body."""
from metaflow import FlowSpec, step


class BenchFiftyStepFlow(FlowSpec):
    @step
    def start(self):
        self.n = 0
        self.next(self.a01)

    @step
    def a01(self):
        self.n += 1
        self.next(self.a02)

    @step
    def a02(self):
        self.n += 1
        self.next(self.a03)

    @step
    def a03(self):
        self.n += 1
        self.next(self.a04)

    @step
    def a04(self):
        self.n += 1
        self.next(self.a05)

    @step
    def a05(self):
        self.n += 1
        self.next(self.a06)

    @step
    def a06(self):
        self.n += 1
        self.next(self.a07)

    @step
    def a07(self):
        self.n += 1
        self.next(self.a08)

    @step
    def a08(self):
        self.n += 1
        self.next(self.a09)

    @step
    def a09(self):
        self.n += 1
        self.next(self.a10)

    @step
    def a10(self):
        self.n += 1
        self.next(self.a11)

    @step
    def a11(self):
        self.n += 1
        self.next(self.a12)

    @step
    def a12(self):
        self.n += 1
        self.next(self.a13)

    @step
    def a13(self):
        self.n += 1
        self.next(self.a14)

    @step
    def a14(self):
        self.n += 1
        self.next(self.a15)

    @step
    def a15(self):
        self.n += 1
        self.next(self.a16)

    @step
    def a16(self):
        self.n += 1
        self.next(self.a17)

    @step
    def a17(self):
        self.n += 1
        self.next(self.a18)

    @step
    def a18(self):
        self.n += 1
        self.next(self.a19)

    @step
    def a19(self):
        self.n += 1
        self.next(self.b01, self.b02, self.b03, self.b04, self.b05, self.b06, self.b07, self.b08, self.b09, self.b10)

    @step
    def b01(self):
        self.b = 1
        self.next(self.join_b)

    @step
    def b02(self):
        self.b = 2
        self.next(self.join_b)

    @step
    def b03(self):
        self.b = 3
        self.next(self.join_b)

    @step
    def b04(self):
        self.b = 4
        self.next(self.join_b)

    @step
    def b05(self):
        self.b = 5
        self.next(self.join_b)

    @step
    def b06(self):
        self.b = 6
        self.next(self.join_b)

    @step
    def b07(self):
        self.b = 7
        self.next(self.join_b)

    @step
    def b08(self):
        self.b = 8
        self.next(self.join_b)

    @step
    def b09(self):
        self.b = 9
        self.next(self.join_b)

    @step
    def b10(self):
        self.b = 10
        self.next(self.join_b)

    @step
    def join_b(self, inputs):
        self.n = inputs.b01.n
        self.next(self.fan)

    @step
    def fan(self):
        self.items = list(range(4))
        self.next(self.c01, foreach="items")

    @step
    def c01(self):
        self.x = self.input
        self.next(self.c02)

    @step
    def c02(self):
        self.x += 1
        self.next(self.c03)

    @step
    def c03(self):
        self.x += 1
        self.next(self.c04)

    @step
    def c04(self):
        self.x += 1
        self.next(self.c05)

    @step
    def c05(self):
        self.x += 1
        self.next(self.c06)

    @step
    def c06(self):
        self.x += 1
        self.next(self.c07)

    @step
    def c07(self):
        self.x += 1
        self.next(self.c08)

    @step
    def c08(self):
        self.x += 1
        self.next(self.c09)

    @step
    def c09(self):
        self.x += 1
        self.next(self.c10)

    @step
    def c10(self):
        self.x += 1
        self.next(self.c11)

    @step
    def c11(self):
        self.x += 1
        self.next(self.c12)

    @step
    def c12(self):
        self.x += 1
        self.next(self.join_c)

    @step
    def join_c(self, inputs):
        self.total = sum(inp.x for inp in inputs)
        self.merge_artifacts(inputs, include=["n"])
        self.next(self.d01)

    @step
    def d01(self):
        self.n += 1
        self.next(self.d02)

    @step
    def d02(self):
        self.n += 1
        self.next(self.d03)

    @step
    def d03(self):
        self.n += 1
        self.next(self.d04)

    @step
    def d04(self):
        self.n += 1
        self.next(self.end)

    @step
    def end(self):
        print("n:", self.n, "total:", self.total)
        pass


if __name__ == "__main__":
    BenchFiftyStepFlow()
