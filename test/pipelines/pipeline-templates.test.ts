// The hand-written templates: the kfp SDK and Argo's own linter accept them, and their wiring matches Metaflow's graph of each flow.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { FLOWS, REPO } from '../helpers/paths'
import { argoLint, kfpCheck } from '../helpers/template-checks'
import { useTempDir } from '../helpers/temp-dir'
import { argoWiring, kfpWiring, metaflowGraph, wiringProblems } from '../helpers/template-wiring'

const TEMPLATES = resolve(REPO, 'pipeline-templates')
const FLOW_NAMES = ['hello_flow', 'branch_flow', 'foreach_flow', 'nested_foreach_flow', 'params_flow']
const KFP = FLOW_NAMES.map((f) => `${f}.kfp.yaml`)
const ARGO = FLOW_NAMES.map((f) => `${f}.argo.yaml`)

describe('pipeline templates', () => {
  const tempDir = useTempDir()

  it('are one KFP v2 and one Argo template per example flow, and nothing else', () => {
    const files = readdirSync(TEMPLATES).filter((f) => f.endsWith('.yaml')).sort()
    expect(files).toEqual([...KFP, ...ARGO].sort())
  })

  it('each start with a comment, run the agent with an explicit command and use the image placeholder', () => {
    for (const f of [...KFP, ...ARGO]) {
      const text = readFileSync(join(TEMPLATES, f), 'utf8')
      expect(text.startsWith('# '), f).toBe(true)
      expect(text, f).toMatch(/To adapt it to your flow:/)
      const images = [...text.matchAll(/^ +image: (\S+)$/gm)].map((m) => m[1])
      const commands = [...text.matchAll(/^ +command: (.+)$/gm)].map((m) => m[1])
      expect(images.length, f).toBeGreaterThan(0)
      expect(new Set(images), f).toEqual(new Set(['localhost/metaflow-kfp:0.1.0']))
      expect(commands.length, f).toBe(images.length)
      expect(new Set(commands), f).toEqual(new Set(['[/usr/local/bin/metaflow-kfp]']))
    }
  })

  it('load with the kfp SDK, which parses the PipelineSpec strictly', async () => {
    const r = await kfpCheck(KFP.map((f) => join(TEMPLATES, f)))
    expect(r.output).toBe('ok\n')
    expect(r.ok).toBe(true)
  })

  it('fail the kfp SDK check when a key is misspelt', async () => {
    const bad = join(tempDir(), 'bad.kfp.yaml')
    writeFileSync(bad, readFileSync(join(TEMPLATES, 'foreach_flow.kfp.yaml'), 'utf8').replace('parameterIterator:', 'parameterIterater:'))
    const r = await kfpCheck([bad])
    expect(r.ok).toBe(false)
    expect(r.output).toMatch(/parameterIterater/)
  })

  it('pass argo lint --offline --strict', async () => {
    const r = await argoLint(ARGO.map((f) => join(TEMPLATES, f)))
    expect(r.output).toMatch(/no linting errors found/)
    expect(r.ok).toBe(true)
  })

  it('fail argo lint when a key is misspelt', async () => {
    const bad = join(tempDir(), 'bad.argo.yaml')
    writeFileSync(bad, readFileSync(join(TEMPLATES, 'foreach_flow.argo.yaml'), 'utf8').replace('withSequence:', 'withSequense:'))
    const r = await argoLint([bad])
    expect(r.ok).toBe(false)
    expect(r.output).toMatch(/withSequense/)
  })

  describe.each(FLOW_NAMES)('for %s', (flow) => {
    it("wire every step as Metaflow's own graph of the flow says, in both forms", async () => {
      const graph = await metaflowGraph(join(FLOWS, `${flow}.py`))
      expect(Object.keys(graph)).toContain('end')
      expect(wiringProblems(kfpWiring(readFileSync(join(TEMPLATES, `${flow}.kfp.yaml`), 'utf8')), graph)).toEqual([])
      expect(wiringProblems(argoWiring(readFileSync(join(TEMPLATES, `${flow}.argo.yaml`), 'utf8')), graph)).toEqual([])
    })
  })

  it('report a wiring that differs from the flow: a join with a missing parent, a loop over the wrong step', async () => {
    const branch = await metaflowGraph(join(FLOWS, 'branch_flow.py'))
    const kfp = readFileSync(join(TEMPLATES, 'branch_flow.kfp.yaml'), 'utf8').replace('          - --parent\n          - right\n', '')
    expect(wiringProblems(kfpWiring(kfp), branch)).toEqual([expect.stringMatching(/^join: has --parent \[left\], Metaflow's parents are \[left,right\]/)])

    const nested = await metaflowGraph(join(FLOWS, 'nested_foreach_flow.py'))
    const argo = readFileSync(join(TEMPLATES, 'nested_foreach_flow.argo.yaml'), 'utf8').replace(
      'count: "{{tasks.outer.outputs.parameters.split_count}}"',
      'count: "{{tasks.outer.outputs.parameters.task_id}}"',
    )
    expect(() => argoWiring(argo)).toThrow(/does not loop over a split_count/)
    const order = readFileSync(join(TEMPLATES, 'hello_flow.argo.yaml'), 'utf8').replace('template: end\n            dependencies: [hello]', 'template: end\n            dependencies: [start]')
    expect(wiringProblems(argoWiring(order), await metaflowGraph(join(FLOWS, 'hello_flow.py')))).toEqual(['end: may start before its parent hello finished'])
    expect(nested.start?.type).toBe('split-foreach')
  })
})
