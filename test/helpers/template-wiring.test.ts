// metaflowGraph asks Metaflow for a flow's graph from a temp folder of its own, so nothing is left where the tests run.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { metaflowGraph } from './template-wiring'
import { useTempDir } from './temp-dir'

// Writes the folder Metaflow runs in next to itself, so the test sees where output-raw ran.
const CWD_FLOW = `import os

from metaflow import FlowSpec, step

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cwd.txt'), 'w') as f:
    f.write(os.getcwd())


class CwdFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == '__main__':
    CwdFlow()
`

describe('metaflowGraph', () => {
  const tempDir = useTempDir()

  it("runs output-raw in a temp folder it removes, not the test's cwd, where it left an empty .metaflow folder in the repository", async () => {
    const dir = tempDir()
    const flow = join(dir, 'cwd_flow.py')
    writeFileSync(flow, CWD_FLOW)
    // A path relative to the test's cwd still names the flow once Metaflow runs elsewhere.
    const graph = await metaflowGraph(relative(process.cwd(), flow))
    expect(graph.start?.next).toEqual(['end'])
    const ranIn = readFileSync(join(dir, 'cwd.txt'), 'utf8')
    expect(ranIn).not.toBe(process.cwd())
    expect(ranIn).not.toBe(dir)
    expect(existsSync(ranIn)).toBe(false)
  }, 60_000)
})
