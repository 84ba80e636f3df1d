// Every KFP v2 pipeline is held to KFP's run-time rules by test/pipelines/kfp_rules.py, and each rule is shown to fail on a broken template.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runAgent } from '../helpers/agent-process'
import { kfpRules as check, kfpRulesWithout } from '../helpers/kfp-rules'
import { FIXTURE_FLOWS, FLOWS, PYTHON, REPO } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'
import { generateFile } from './generate-checks'

const TEMPLATES = resolve(REPO, 'pipeline-templates')
const FLOW_NAMES = ['hello_flow', 'branch_flow', 'foreach_flow', 'nested_foreach_flow', 'params_flow']
const KFP_TEMPLATES = FLOW_NAMES.map((f) => join(TEMPLATES, `${f}.kfp.yaml`))

// A flow whose steps retry, for what generate writes for @retry.
const RETRY_FLOW = `from metaflow import FlowSpec, retry, step


class RetryFlow(FlowSpec):
    @retry(times=2)
    @step
    def start(self):
        self.next(self.end)

    @retry(times=1, minutes_between_retries=1)
    @step
    def end(self):
        pass


if __name__ == '__main__':
    RetryFlow()
`

// A step with @environment and @resources together, a GPU among them (linear_flow has them on separate steps, no GPU).
const GPU_FLOW = `from metaflow import FlowSpec, environment, resources, step


class GpuFlow(FlowSpec):
    @environment(vars={"MODE": "train", "LEVEL": "3"})
    @resources(cpu=0.5, memory=2048, gpu=2)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == '__main__':
    GpuFlow()
`

function template(name: string): string {
  return readFileSync(join(TEMPLATES, `${name}.kfp.yaml`), 'utf8')
}

/** Replaces `from` (which must be there) with `to`, once or everywhere. */
function mutate(text: string, from: string, to: string, all = false): string {
  if (!text.includes(from)) throw new Error(`the template has no ${JSON.stringify(from)}: update this test`)
  return all ? text.split(from).join(to) : text.replace(from, to)
}

const RETRY = 'retryPolicy: {maxRetryCount: 2, backoffDuration: 0s, backoffFactor: 2, backoffMaxDuration: 259200s}'
const SDK_BUILD = /^task -: sdk-build: the kfp SDK /

// Each broken template, and the lines the checker must print for it (file prefix left out), nothing else.
const MUTATIONS: { name: string; flow: string; edit: (t: string) => string; expected: (RegExp | string)[] }[] = [
  {
    name: 'a retryPolicy without backoffMaxDuration',
    flow: 'foreach_flow',
    edit: (t) => mutate(t, RETRY, 'retryPolicy: {maxRetryCount: 2, backoffDuration: 0s, backoffFactor: 2}'),
    expected: [
      /^task start: retry-max-duration: retryPolicy has backoffMaxDuration unset: KFP >= 2\.14 .*maxDuration "0".*never retries/,
      /^task start: sdk-retryPolicy: ours is \{.*\}, the kfp SDK's dsl compiles \{.*'backoffMaxDuration': '3600s'/,
    ],
  },
  {
    name: 'a backoffMaxDuration under one second, which KFP passes to Argo as "0"',
    flow: 'hello_flow',
    edit: (t) => mutate(t, 'backoffMaxDuration: 259200s}', 'backoffMaxDuration: 0.5s}'),
    expected: [/^task start: retry-max-duration: retryPolicy has backoffMaxDuration 0\.500s/, SDK_BUILD],
  },
  {
    name: 'a fractional backoffFactor, which Argo cannot parse as an integer',
    flow: 'hello_flow',
    edit: (t) => mutate(t, 'backoffFactor: 2, backoffMaxDuration', 'backoffFactor: 1.5, backoffMaxDuration'),
    expected: [/^task start: retry-factor: retryPolicy\.backoffFactor 1\.5 is not a whole number/],
  },
  {
    name: 'backoff waits longer than backoffMaxDuration',
    flow: 'hello_flow',
    edit: (t) => mutate(t, 'backoffDuration: 0s, backoffFactor: 2, backoffMaxDuration: 259200s', 'backoffDuration: 3600s, backoffFactor: 2, backoffMaxDuration: 7200s'),
    expected: [/^task start: retry-backoff: the backoff waits of 2 retries \(10800s\) reach backoffMaxDuration \(7200s\)/],
  },
  {
    name: 'a retryPolicy on a loop, which KFP never compiles into a retry',
    flow: 'foreach_flow',
    edit: (t) => mutate(t, '        iteratorPolicy: {parallelismLimit: 10}\n', `        iteratorPolicy: {parallelismLimit: 10}\n        ${RETRY}\n`),
    expected: [/^task for-loop-explore: retry-dag: retryPolicy on a DAG task is never compiled/],
  },
  {
    name: 'a misspelt outputParameterKey',
    flow: 'foreach_flow',
    edit: (t) => mutate(t, 'taskOutputParameter: {producerTask: start, outputParameterKey: split_count}', 'taskOutputParameter: {producerTask: start, outputParameterKey: split_cnt}'),
    expected: [/^task join: output-key: input 'num_splits' reads outputParameterKey 'split_cnt', which task start does not declare/, SDK_BUILD],
  },
  {
    name: 'an output of the wrong type for its input',
    flow: 'foreach_flow',
    edit: (t) => mutate(t, 'taskOutputParameter: {producerTask: start, outputParameterKey: split_count}', 'taskOutputParameter: {producerTask: start, outputParameterKey: splits}'),
    expected: [/^task join: input-type: input 'num_splits' is NUMBER_INTEGER but gets a LIST value/, SDK_BUILD],
  },
  {
    name: 'an input read from a task it does not wait for',
    flow: 'foreach_flow',
    edit: (t) => mutate(t, 'dependentTasks: [for-loop-explore, start]', 'dependentTasks: [for-loop-explore]'),
    expected: [
      /^task join: producer-dependency: input 'num_splits' reads task start but dependentTasks does not name it/,
      /^task join: sdk-waits-for: ours is \['explore'\], the kfp SDK's dsl compiles \['explore', 'start'\]/,
    ],
  },
  {
    name: 'a placeholder naming no input',
    flow: 'foreach_flow',
    edit: (t) => mutate(t, `"{{$.inputs.parameters['split_index']}}"`, `"{{$.inputs.parameters['split_idx']}}"`),
    expected: [/^task for-loop-explore\/explore: placeholder-input: argument .* names input 'split_idx', which component comp-explore does not declare/, SDK_BUILD],
  },
  {
    name: 'a placeholder naming no output, so the declared one is never written',
    flow: 'hello_flow',
    edit: (t) => mutate(t, `"task_id={{$.outputs.parameters['task_id'].output_file}}"`, `"task_id={{$.outputs.parameters['task'].output_file}}"`),
    expected: [
      /^task start: placeholder-output: argument .* names output 'task', which component comp-start does not declare/,
      /^task start: output-unwritten: output 'task_id' of component comp-start has no /,
      SDK_BUILD,
    ],
  },
  {
    name: 'a run-id placeholder outside a runtimeValue, which the launcher leaves as text',
    flow: 'hello_flow',
    edit: (t) => mutate(t, `"kfp-{{$.inputs.parameters['run_uuid']}}"`, `"kfp-{{$.pipeline_job_uuid}}"`),
    expected: [/^task start: placeholder-unknown: argument 'kfp-\{\{\$\.pipeline_job_uuid\}\}' holds/, SDK_BUILD],
  },
  {
    name: 'a runtimeValue constant that is not the whole placeholder',
    flow: 'hello_flow',
    edit: (t) => mutate(t, `run_uuid: {runtimeValue: {constant: '{{$.pipeline_job_uuid}}'}}`, `run_uuid: {runtimeValue: {constant: 'kfp-{{$.pipeline_job_uuid}}'}}`),
    expected: [/^task start: runtime-constant: input 'run_uuid' is the constant 'kfp-\{\{\$\.pipeline_job_uuid\}\}'/],
  },
  {
    name: 'an iterator naming no input',
    flow: 'foreach_flow',
    edit: (t) => mutate(t, 'items: {inputParameter: pipelinechannel--start-splits}', 'items: {inputParameter: pipelinechannel--start-split}'),
    expected: [/^task for-loop-explore: iterator-items: parameterIterator\.items\.inputParameter 'pipelinechannel--start-split' is not an input of the loop task/, SDK_BUILD],
  },
  {
    name: 'a loop item input the loop component does not declare',
    flow: 'foreach_flow',
    edit: (t) => mutate(t, 'itemInput: pipelinechannel--start-splits-loop-item', 'itemInput: pipelinechannel--start-splits-item'),
    expected: [
      /^task for-loop-explore: input-missing: component comp-for-loop-explore input 'pipelinechannel--start-splits-loop-item' gets no value/,
      /^task for-loop-explore: iterator-item-input: parameterIterator\.itemInput 'pipelinechannel--start-splits-item' is not declared/,
      SDK_BUILD,
    ],
  },
  {
    name: 'a loop item typed as text for a number input',
    flow: 'foreach_flow',
    edit: (t) => mutate(t, 'pipelinechannel--start-splits-loop-item: {parameterType: NUMBER_INTEGER}', 'pipelinechannel--start-splits-loop-item: {parameterType: STRING}'),
    expected: [/^task for-loop-explore\/explore: input-type: input 'split_index' is NUMBER_INTEGER but gets a STRING value/, SDK_BUILD],
  },
  {
    name: "a task reading an input its loop does not pass in",
    flow: 'foreach_flow',
    edit: (t) => mutate(t, 'code_url: {componentInputParameter: pipelinechannel--code_url}', 'code_url: {componentInputParameter: code_url}'),
    expected: [/^task for-loop-explore\/explore: component-input: componentInputParameter 'code_url' is not an input of the enclosing DAG/, SDK_BUILD],
  },
  {
    name: 'a misspelt task input',
    flow: 'hello_flow',
    edit: (t) => mutate(t, `run_uuid: {runtimeValue: {constant: '{{$.pipeline_job_uuid}}'}}`, `run_uid: {runtimeValue: {constant: '{{$.pipeline_job_uuid}}'}}`),
    expected: [
      /^task start: input-declared: input 'run_uid' is not declared by component comp-start/,
      /^task start: input-missing: component comp-start input 'run_uuid' gets no value/,
      SDK_BUILD,
    ],
  },
]

describe('KFP run-time rules (test/pipelines/kfp_rules.py)', () => {
  const tempDir = useTempDir()

  it('hold for every KFP v2 template, and the kfp SDK compiles the same pipeline for each', async () => {
    const r = await check(KFP_TEMPLATES)
    expect(r.lines).toEqual(['ok'])
    expect(r.code).toBe(0)
  })

  it('flag a retryPolicy without backoff fields, with which the templates never retried on KFP >= 2.14 (Argo got maxDuration "0")', async () => {
    // The templates as they were: retryPolicy: {maxRetryCount: 2} on every task.
    const dir = tempDir()
    const paths = ['hello_flow', 'nested_foreach_flow'].map((f) => {
      const p = join(dir, `${f}.kfp.yaml`)
      writeFileSync(p, mutate(template(f), RETRY, 'retryPolicy: {maxRetryCount: 2}', true))
      return p
    })
    const r = await check(paths)
    expect(r.code).toBe(1)
    const retried = (f: string) => r.lines.filter((l) => l.startsWith(join(dir, f)) && l.includes(': retry-max-duration: '))
    expect(retried('hello_flow.kfp.yaml').map((l) => l.split(': task ')[1]?.split(':')[0]).sort()).toEqual(['end', 'hello', 'start'])
    expect(retried('nested_foreach_flow.kfp.yaml').map((l) => l.split(': task ')[1]?.split(':')[0]).sort()).toEqual(
      ['end', 'for-loop-outer/for-loop-inner/inner', 'for-loop-outer/inner-join', 'for-loop-outer/outer', 'outer-join', 'start'],
    )
    expect(r.lines.filter((l) => l.includes(': sdk-retryPolicy: '))).toHaveLength(9)
    expect(r.lines).toHaveLength(18)
  })

  describe('report each broken template with one line per violation, naming the file, task and rule', () => {
    let results: Map<string, string[]>
    beforeAll(async () => {
      const dir = tempDir()
      const paths = MUTATIONS.map((m, i) => {
        const p = join(dir, `m${i}-${m.flow}.kfp.yaml`)
        writeFileSync(p, m.edit(template(m.flow)))
        return p
      })
      const r = await check(paths)
      expect(r.code).toBe(1)
      results = new Map(paths.map((p) => [p, r.lines.filter((l) => l.startsWith(`${p}: `)).map((l) => l.slice(p.length + 2))]))
    }, 120_000)

    it.each(MUTATIONS.map((m, i) => [m.name, i] as const))('%s', (_name, i) => {
      const m = MUTATIONS[i]!
      const lines = [...results.entries()].find(([p]) => p.endsWith(`/m${i}-${m.flow}.kfp.yaml`))![1]
      expect(lines).toHaveLength(m.expected.length)
      for (const want of m.expected) expect(lines, String(want)).toContainEqual(expect.stringMatching(want))
    })
  })

  it('hold for the KFP v2 pipeline metaflow-kfp generate writes for every example flow and for a flow with @retry', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'retry_flow.py'), RETRY_FLOW)
    const flows = [...FLOW_NAMES.map((f) => join(FLOWS, `${f}.py`)), join(dir, 'retry_flow.py')]
    const outputs: string[] = []
    for (const flow of flows) {
      const out = join(dir, `${flow.split('/').pop()!.replace(/\.py$/, '')}.kfp.yaml`)
      const r = await runAgent(['generate', flow, '--code-url', 'https://example.com/flow.py', '--output', out, '--python', PYTHON])
      expect(r.code, r.stderr).toBe(0)
      outputs.push(out)
    }
    expect(readFileSync(outputs.at(-1)!, 'utf8')).toMatch(/backoffMaxDuration/)
    const r = await check(outputs)
    expect(r.lines).toEqual(['ok'])
  }, 180_000)

  it('checks only the static rules with --static-only, and refuses a file that is not a PipelineSpec', async () => {
    const dir = tempDir()
    const bad = join(dir, 'bad.kfp.yaml')
    writeFileSync(bad, mutate(template('hello_flow'), 'dependentTasks:', 'dependsOn:'))
    const r = await check([bad], ['--static-only'])
    expect(r.code).toBe(1)
    expect(r.lines).toEqual([expect.stringMatching(/^.*bad\.kfp\.yaml: task -: parse: .*dependsOn/)])
  })

  describe("hold a switch's condition groups to the driver's rules and to the kfp SDK's dsl.If/Elif/Else with dsl.OneOf", () => {
    let dir: string
    let pipeline: string
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'mfkfp-test-'))
      pipeline = await generateFile(join(FIXTURE_FLOWS, 'generate', 'switch_flow.py'), join(dir, 'switch_flow.kfp.yaml'))
    }, 120_000)
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true })
    })

    const IF = "condition: inputs.parameter_values['pipelinechannel--start-switch_step'] == 'a'"
    const ELSE = `condition: "!(inputs.parameter_values['pipelinechannel--start-switch_step'] == 'a')"`
    // Each broken pipeline, and the lines the checker must print for it (file prefix left out), nothing else.
    const CONDITION_MUTATIONS: { name: string; edit: (t: string) => string; expected: RegExp[] }[] = [
      {
        name: 'a condition reading an input its task does not pass',
        edit: (t) => mutate(t, IF, "condition: inputs.parameter_values['pipelinechannel--start-switch'] == 'a'"),
        expected: [/^task condition-branches-1\/condition-2: condition-input: triggerPolicy\.condition reads inputs\.parameter_values\['pipelinechannel--start-switch'\], which the task does not pass/, SDK_BUILD],
      },
      {
        name: 'a condition comparing the text switch_step with a number, which CEL cannot',
        edit: (t) => mutate(t, IF, "condition: inputs.parameter_values['pipelinechannel--start-switch_step'] == 1"),
        expected: [/^task condition-branches-1\/condition-2: condition-type: triggerPolicy\.condition compares the STRING input 'pipelinechannel--start-switch_step' with 1/, SDK_BUILD],
      },
      {
        name: 'a condition with an unbalanced parenthesis',
        edit: (t) => mutate(t, ELSE, `condition: "!(inputs.parameter_values['pipelinechannel--start-switch_step'] == 'a'"`),
        expected: [/^task condition-branches-1\/condition-3: condition-syntax: /, /^task b: sdk-conditions: ours is \["!\(\('output', 'start', 'switch_step'\) == 'a'"\], the kfp SDK's dsl compiles \["!\(\('output', 'start', 'switch_step'\) == 'a'\)"\]/],
      },
      {
        name: 'an Else branch that negates another case than the If tests, so both cases can run',
        edit: (t) => mutate(t, ELSE, `condition: "!(inputs.parameter_values['pipelinechannel--start-switch_step'] == 'b')"`),
        expected: [/^task b: sdk-conditions: ours is \[.*== 'b'\)"\], the kfp SDK's dsl compiles \[.*== 'a'\)"\]/],
      },
      {
        name: 'a last case tested on its own rather than as dsl.Else, which a dsl.OneOf over the cases needs',
        edit: (t) => mutate(t, ELSE, "condition: inputs.parameter_values['pipelinechannel--start-switch_step'] == 'b'"),
        expected: [/^task -: sdk-build: the kfp SDK .*dsl\.OneOf must include an output from a task in a dsl\.Else group/],
      },
      {
        name: "a case branch that waits for the other one, which the driver skips whenever that one's condition is false",
        edit: (t) => mutate(t, '        condition-3:\n          taskInfo:\n            name: condition-3\n', '        condition-3:\n          taskInfo:\n            name: condition-3\n          dependentTasks:\n            - condition-2\n'),
        expected: [/^task condition-branches-1\/condition-3: condition-dependency: dependentTasks names 'condition-2', which has a triggerPolicy\.condition/, /^task b: sdk-waits-for: ours is \['a', 'start'\], the kfp SDK's dsl compiles \['start'\]/],
      },
      {
        name: "a dsl.OneOf selecting an output its branch does not declare",
        edit: (t) => mutate(t, '                - producerSubtask: condition-3\n                  outputParameterKey: pipelinechannel--b-task_id', '                - producerSubtask: condition-3\n                  outputParameterKey: pipelinechannel--b-task'),
        expected: [/^task comp-condition-branches-1: dag-output: dag output 'pipelinechannel--condition-branches-1-oneof-1' reads output 'pipelinechannel--b-task', which task condition-3 does not declare/, SDK_BUILD],
      },
      {
        name: 'a step waiting for the condition group without reading its dsl.OneOf output',
        edit: (t) => mutate(t, "            case_task_id:\n              taskOutputParameter:\n                producerTask: condition-branches-1\n                outputParameterKey: pipelinechannel--condition-branches-1-oneof-1\n", ''),
        expected: [/^task end: input-missing: component comp-end input 'case_task_id' gets no value/, SDK_BUILD],
      },
    ]

    it('hold for what generate writes for a switch', async () => {
      expect(pipeline).toContain('triggerPolicy')
      const r = await check([join(dir, 'switch_flow.kfp.yaml')])
      expect(r.lines).toEqual(['ok'])
    })

    it.each(CONDITION_MUTATIONS.map((m, i) => [m.name, i] as const))('flag %s', async (_name, i) => {
      const m = CONDITION_MUTATIONS[i]!
      const p = join(dir, `c${i}.kfp.yaml`)
      writeFileSync(p, m.edit(pipeline))
      const r = await check([p])
      expect(r.code).toBe(1)
      const lines = r.lines.map((l) => l.slice(p.length + 2))
      expect(lines, lines.join('\n')).toHaveLength(m.expected.length)
      for (const want of m.expected) expect(lines, String(want)).toContainEqual(expect.stringMatching(want))
    })
  })

  describe('compare container env and resources with the kfp SDK (set_env_variable, set_cpu_/memory_request and _limit, set_accelerator_type and _limit)', () => {
    let dir: string
    const out: Record<string, string> = {}
    beforeAll(async () => {
      // Its own folder: useTempDir's would be removed after the first test here.
      dir = mkdtempSync(join(tmpdir(), 'mfkfp-test-'))
      writeFileSync(join(dir, 'gpu_flow.py'), GPU_FLOW)
      out.linear = join(dir, 'linear_flow.kfp.yaml')
      out.gpu = join(dir, 'gpu_flow.kfp.yaml')
      await generateFile(join(FIXTURE_FLOWS, 'generate', 'linear_flow.py'), out.linear)
      await generateFile(join(dir, 'gpu_flow.py'), out.gpu)
    }, 120_000)
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true })
    })

    it('hold for what generate writes for @environment and @resources, which the SDK writes the same', async () => {
      // What makes this test worth running: the env and resources are there to compare.
      expect(readFileSync(out.linear!, 'utf8')).toMatch(/env:\n\s+- name: GREETING\n\s+value: hello from @environment\n/)
      expect(readFileSync(out.linear!, 'utf8')).toMatch(/resourceMemoryLimit: 512M\n/)
      expect(readFileSync(out.gpu!, 'utf8')).toMatch(/accelerator:\n\s+resourceType: nvidia.com\/gpu\n\s+resourceCount: "2"\n/)
      const r = await check([out.linear!, out.gpu!])
      expect(r.lines).toEqual(['ok'])
      expect(r.code).toBe(0)
    })

    it('flag every step with @environment or @resources when the reference leaves them out, so the comparison can fail', async () => {
      const r = await kfpRulesWithout('set_env_and_resources', [out.linear!, out.gpu!])
      expect(r.code).toBe(1)
      expect(r.lines.map((l) => l.replace(dir, 'DIR'))).toEqual([
        "DIR/linear_flow.kfp.yaml: task middle: sdk-env: ours is [('GREETING', 'hello from @environment')], the kfp SDK's dsl compiles [] (make them agree)",
        expect.stringMatching(/^DIR\/linear_flow\.kfp\.yaml: task start: sdk-resources: ours is \{.*'resourceMemoryLimit': '512M'.*\}, the kfp SDK's dsl compiles \{\} \(make them agree\)$/),
        "DIR/gpu_flow.kfp.yaml: task start: sdk-env: ours is [('MODE', 'train'), ('LEVEL', '3')], the kfp SDK's dsl compiles [] (make them agree)",
        expect.stringMatching(/^DIR\/gpu_flow\.kfp\.yaml: task start: sdk-resources: ours is \{.*'accelerator': .*\}, the kfp SDK's dsl compiles \{\} \(make them agree\)$/),
      ])
    })

    // Each broken pipeline, and the one line the checker must print for it (file prefix left out).
    const ENV_MUTATIONS: { name: string; flow: 'linear' | 'gpu'; edit: (t: string) => string; expected: RegExp }[] = [
      {
        name: 'a memory limit written as 512MB, a form the SDK refuses',
        flow: 'linear',
        edit: (t) => mutate(t, 'resourceMemoryLimit: 512M\n', 'resourceMemoryLimit: 512MB\n'),
        expected: /^task -: sdk-build: .*task start: the kfp SDK refuses its env or resources: Invalid memory string/,
      },
      {
        name: 'a memory limit number in MB where KFP reads GB',
        flow: 'linear',
        edit: (t) => mutate(t, ' memoryLimit: 0.512\n', ' memoryLimit: 512\n'),
        expected: /^task start: sdk-resources: ours is \{'memoryLimit': 512\.0\}, the kfp SDK's dsl compiles \{'memoryLimit': 0\.512\} \(make them agree\)$/,
      },
      {
        name: 'a cpu request given only as the deprecated number',
        flow: 'linear',
        edit: (t) => mutate(t, 'resourceCpuRequest: "2"\n          resourceCpuLimit', 'resourceCpuLimit'),
        expected: /^task start: sdk-resources: ours is \{'cpuRequest': 2\.0\}, the kfp SDK's dsl compiles \{\}/,
      },
      {
        name: 'an environment variable set twice, which the SDK writes once',
        flow: 'linear',
        edit: (t) => mutate(t, '- name: GREETING\n', '- name: GREETING\n            value: first\n          - name: GREETING\n'),
        expected: /^task middle: sdk-env: ours is \[\('GREETING', 'first'\), \('GREETING', 'hello from @environment'\)\], the kfp SDK's dsl compiles \[\('GREETING', 'hello from @environment'\)\]/,
      },
      {
        name: 'a GPU count that disagrees with its text form',
        flow: 'gpu',
        edit: (t) => mutate(t, '  count: "2"\n', '  count: "1"\n'),
        expected: /^task start: sdk-resources: ours is \{'accelerator': \{.*'count': '1'.*\}\}, the kfp SDK's dsl compiles \{'accelerator': \{.*'count': '2'.*\}\}/,
      },
      {
        name: 'a GPU count the SDK refuses',
        flow: 'gpu',
        edit: (t) => mutate(t, 'resourceCount: "2"\n', 'resourceCount: "two"\n'),
        expected: /^task -: sdk-build: .*task start: the kfp SDK refuses its env or resources: limit must be a non-negative integer/,
      },
    ]

    it.each(ENV_MUTATIONS.map((m, i) => [m.name, i] as const))('flag %s, in one line', async (_name, i) => {
      const m = ENV_MUTATIONS[i]!
      const p = join(dir, `e${i}-${m.flow}.kfp.yaml`)
      writeFileSync(p, m.edit(readFileSync(out[m.flow]!, 'utf8')))
      const r = await check([p])
      expect(r.code).toBe(1)
      expect(r.lines).toHaveLength(1)
      expect(r.lines[0]!.startsWith(`${p}: `), r.lines[0]).toBe(true)
      expect(r.lines[0]!.slice(p.length + 2)).toMatch(m.expected)
    })
  })
})
