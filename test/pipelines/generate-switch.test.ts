// metaflow-kfp generate for Metaflow switches and custom-named start and end steps: valid output in both forms, the condition wiring, and refusals by name.
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { agentEnv, runAgent } from '../helpers/agent-process'
import { runArtifacts, runFlowPlainly } from '../helpers/flow-artifacts'
import { CORPUS } from '../helpers/generate-corpus'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { PYTHON } from '../helpers/paths'
import { kfpRules } from '../helpers/kfp-rules'
import { argoLint, kfpCheck } from '../helpers/template-checks'
import { useTempDir } from '../helpers/temp-dir'
import { generate, generateFile } from './generate-checks'

type Obj = Record<string, any>

const SWITCH_FLOWS = ['switch_flow', 'switch_after_switch_flow', 'branch_in_case_flow', 'foreach_in_case_flow', 'switch_in_foreach_flow', 'nested_switch_flow', 'custom_start_end_flow']

/** A flow file from its body lines (the class and the __main__ guard added). */
function flowFile(dir: string, name: string, body: string[]): string {
  const file = join(dir, `${name.toLowerCase()}.py`)
  writeFileSync(file, ['from metaflow import FlowSpec, step', `class ${name}(FlowSpec):`, ...body.map((l) => `    ${l}`), 'if __name__ == "__main__":', `    ${name}()`, ''].join('\n'))
  return file
}

describe('metaflow-kfp generate for switches', () => {
  const tempDir = useTempDir()

  it("writes every switch shape as pipelines the kfp SDK loads strictly, that keep KFP's run-time rules and match the SDK's dsl.If/Elif/Else, and that Argo lints strictly", async () => {
    const dir = tempDir()
    const kfp: string[] = []
    const argo: string[] = []
    for (const flow of SWITCH_FLOWS) {
      const file = join(CORPUS, `${flow}.py`)
      kfp.push(join(dir, `${flow}.kfp.yaml`))
      argo.push(join(dir, `${flow}.argo.yaml`))
      await generateFile(file, kfp.at(-1) as string)
      await generateFile(file, argo.at(-1) as string, ['--format', 'argo'])
    }
    expect((await kfpCheck(kfp)).output).toBe('ok\n')
    expect((await kfpRules(kfp)).lines).toEqual(['ok'])
    const lint = await argoLint(argo)
    expect(lint.output).toMatch(/no linting errors found/)
    expect(lint.ok).toBe(true)
  }, 300_000)

  it("puts each case in a condition on the switch's switch_step output and has the step where the cases meet read a dsl.OneOf, as the kfp SDK compiles dsl.If/Else", async () => {
    const dir = tempDir()
    const kfp = parse(await generateFile(join(CORPUS, 'switch_flow.py'), join(dir, 'p.yaml'))) as Obj
    const root = kfp.root.dag.tasks
    expect(Object.keys(root).sort()).toEqual(['condition-branches-1', 'end', 'start'])
    expect(root['condition-branches-1'].inputs.parameters['pipelinechannel--start-switch_step']).toEqual({ taskOutputParameter: { producerTask: 'start', outputParameterKey: 'switch_step' } })
    const branches = kfp.components['comp-condition-branches-1'].dag.tasks
    expect(Object.fromEntries(Object.entries(branches).map(([k, t]) => [k, (t as Obj).triggerPolicy.condition]))).toEqual({
      'condition-2': "inputs.parameter_values['pipelinechannel--start-switch_step'] == 'a'",
      'condition-3': "!(inputs.parameter_values['pipelinechannel--start-switch_step'] == 'a')",
    })
    expect(Object.keys(kfp.components['comp-condition-2'].dag.tasks)).toEqual(['a'])
    expect(root.end.dependentTasks).toEqual(['condition-branches-1'])
    expect(root.end.inputs.parameters.case_task_id).toEqual({ taskOutputParameter: { producerTask: 'condition-branches-1', outputParameterKey: 'pipelinechannel--condition-branches-1-oneof-1' } })
    const args = (exec: string) => kfp.deploymentSpec.executors[exec].container.args as string[]
    expect(args('exec-end')).toEqual(expect.arrayContaining(['--parent-any', 'a,b']))
    expect(args('exec-end')).not.toContain('--parent')
    expect(args('exec-start')).toContain("switch_step={{$.outputs.parameters['switch_step'].output_file}}")
  })

  it("runs a case when the switch chose it and the step after the cases when one of them succeeded, in Argo as Metaflow's own plugin does", async () => {
    const dir = tempDir()
    const argo = parse(await generateFile(join(CORPUS, 'switch_in_foreach_flow.py'), join(dir, 'a.yaml'), ['--format', 'argo'])) as Obj
    const loop = argo.spec.templates.find((t: Obj) => t.name === 'for-loop-route').dag.tasks as Obj[]
    const task = (name: string) => loop.find((t) => t.name === name) as Obj
    expect(task('odd')).toMatchObject({ depends: 'route.Succeeded', when: "'{{tasks.route.outputs.parameters.switch_step}}' == 'odd'" })
    expect(task('settle').depends).toBe('(even.Succeeded || odd.Succeeded)')
    expect(task('settle').when).toBeUndefined()
    const template = (name: string) => argo.spec.templates.find((t: Obj) => t.name === name) as Obj
    expect(template('route').outputs.parameters).toContainEqual({ name: 'switch_step', valueFrom: { path: '/tmp/outputs/switch_step' } })
    expect(template('settle').container.args).toEqual(expect.arrayContaining(['--parent-any', 'even,odd']))
    // The splits take different cases straight into the join: whichever of big-i and small-i ran.
    expect(template('sizes-join').container.args).toEqual(expect.arrayContaining(['--join-foreach', 'big,small']))
  })

  it('plans from the graph\'s own start step, which @step(start=True) names, and gives it the parameters', async () => {
    const dir = tempDir()
    const kfp = parse(await generateFile(join(CORPUS, 'custom_start_end_flow.py'), join(dir, 'p.yaml'))) as Obj
    expect(kfp.deploymentSpec.executors['exec-begin'].container.args).toEqual(expect.arrayContaining(['--param', "greeting={{$.inputs.parameters['greeting']}}"]))
    expect(kfp.root.dag.tasks.begin.dependentTasks).toBeUndefined()
    expect(kfp.root.dag.tasks.finish.dependentTasks).toEqual(['middle'])
  })

  it.each(['kfp', 'argo'])("runs the other case when a run's parameter picks it, in the %s form, as python flow.py run does", async (form) => {
    const file = join(CORPUS, 'switch_flow.py')
    const cwd = tempDir()
    const pipeline = join(cwd, 'p.yaml')
    await generateFile(file, pipeline, ['--format', form])
    const r = await runAgent(['run-local', pipeline, '--code-url', `file://${file}`, '--python', PYTHON, '--param', 'mode=a', '--datastore-root', join(cwd, '.metaflow')], { cwd, env: agentEnv() })
    expect(r.code, r.stderr).toBe(0)
    const pathspec = (/^Metaflow run: (\S+)$/m.exec(r.stdout) as RegExpExecArray)[1] as string
    const report = await metaflowRun(pathspec, localClientEnv(cwd))
    expect(report.successful).toBe(true)
    expect(Object.keys(report.tasks).sort()).toEqual(['a', 'end', 'start'])
    expect(report.end.result).toBe('took a')
    const plainRoot = tempDir()
    const plain = await runFlowPlainly(file, 'SwitchFlow', ['--mode', 'a'], plainRoot)
    const strip = (a: Record<string, string[]>) => Object.fromEntries(Object.entries(a).filter(([k]) => !k.startsWith('@')))
    expect(strip(await runArtifacts(pathspec, cwd))).toEqual(strip(await runArtifacts(plain, plainRoot)))
  }, 300_000)

  describe('refuses what it cannot carry, naming the step, with exit 64 and one line', () => {
    const refusals: [string, (dir: string) => string, string][] = [
      ['a recursive switch, which KFP v2 cannot loop back to', () => join(CORPUS, 'recursive_switch_flow.py'), 'failed to generate a pipeline for step loop: a recursive switch (a step whose switch leads back to itself) is not supported'],
      ['a switch case that goes straight to a step other cases also reach, where which parent ran does not say what the switch chose', (dir) => flowFile(dir, 'SkipFlow', [
        '@step',
        'def start(self):',
        '    self.k = "a"',
        '    self.next({"a": self.a, "b": self.after}, condition="k")',
        '@step',
        'def a(self):',
        '    self.next(self.after)',
        '@step',
        'def after(self):',
        '    self.next(self.end)',
        '@step',
        'def end(self):',
        '    pass',
      ]), 'failed to generate a pipeline for step after: a switch case that other steps also lead to (start goes straight to after) is not supported'],
      ['a step only some cases of a switch lead to', (dir) => flowFile(dir, 'PartialFlow', [
        '@step',
        'def start(self):',
        '    self.k = "a"',
        '    self.next({"a": self.a, "b": self.b, "c": self.c}, condition="k")',
        '@step',
        'def a(self):',
        '    self.next(self.meet)',
        '@step',
        'def b(self):',
        '    self.next(self.meet)',
        '@step',
        'def meet(self):',
        '    self.next(self.end)',
        '@step',
        'def c(self):',
        '    self.next(self.end)',
        '@step',
        'def end(self):',
        '    pass',
      ]), 'failed to generate a pipeline for step meet: a step that only some cases of switch start lead to (not c) is not supported'],
    ]

    it.each(refusals)('%s', async (_name, file, message) => {
      const dir = tempDir()
      const out = tempDir()
      for (const format of ['kfp', 'argo']) {
        const r = await generate(file(dir), ['--output', join(out, 'p.yaml'), '--format', format])
        expect(r.code).toBe(64)
        expect(r.stderr.trim().split('\n')).toHaveLength(1)
        expect(r.stderr).toContain(`metaflow-kfp: error: ${message}`)
        expect(readdirSync(out)).toEqual([])
      }
    })
  })
})
