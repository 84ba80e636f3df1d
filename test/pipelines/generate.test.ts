// metaflow-kfp generate: the templates' wiring for their flows, valid KFP v2 and Argo output, deploy-time semantics, and refusals by name.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { agentEnv, runAgent } from '../helpers/agent-process'
import { FIXTURE_FLOWS, FLOWS, PYTHON, REPO } from '../helpers/paths'
import { MOTO_KEYS, makeBucket, startMoto } from '../helpers/moto'
import { kfpRules } from '../helpers/kfp-rules'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { startStandIn } from '../kfp-api/standin'
import { env as submitEnv, runIdOf } from '../kfp-api/submit-helpers'
import { argoLint, kfpCheck } from '../helpers/template-checks'
import { useTempDir } from '../helpers/temp-dir'
import { argoWiring, kfpWiring, metaflowGraph, wiringProblems } from '../helpers/template-wiring'
import type { StepWiring } from '../helpers/template-wiring'
import { generate, generateFile } from './generate-checks'

const TEMPLATES = resolve(REPO, 'pipeline-templates')
const CORPUS = join(FIXTURE_FLOWS, 'generate')
const TEMPLATE_FLOWS = ['hello_flow', 'branch_flow', 'foreach_flow', 'nested_foreach_flow', 'params_flow']
const SHAPES = ['nested_branch_flow', 'triple_foreach_flow', 'foreach_in_branch_flow', 'branch_in_foreach_flow', 'linear_flow', 'config_flow', 'include_file_flow', 'project_flow', 'card_flow']

type Obj = Record<string, any>

/** The pipeline: the first YAML document (a KFP file carries its PlatformSpec second when a step has @timeout). */
function parse(text: string): any {
  return (parseAllDocuments(text) as ReturnType<typeof parseAllDocuments> & unknown[])[0]?.toJS()
}

/** The wiring as comparable data: one entry per step, sets sorted. */
function normalised(w: StepWiring[]) {
  return w
    .map((s) => ({ ...s, parents: [...s.parents].sort(), after: [...s.after].sort() }))
    .sort((a, b) => (a.step < b.step ? -1 : 1))
}

describe('metaflow-kfp generate', () => {
  const tempDir = useTempDir()

  describe.each(TEMPLATE_FLOWS)("for the template flow %s", (flow) => {
    it('wires every step exactly as the hand-written templates do, in both forms', async () => {
      const dir = tempDir()
      const file = join(FLOWS, `${flow}.py`)
      const kfp = await generateFile(file, join(dir, 'p.kfp.yaml'))
      const argo = await generateFile(file, join(dir, 'p.argo.yaml'), ['--format', 'argo'])
      expect(normalised(kfpWiring(kfp))).toEqual(normalised(kfpWiring(readFileSync(join(TEMPLATES, `${flow}.kfp.yaml`), 'utf8'))))
      expect(normalised(argoWiring(argo))).toEqual(normalised(argoWiring(readFileSync(join(TEMPLATES, `${flow}.argo.yaml`), 'utf8'))))
      // The same pipeline inputs as the template, typed and defaulted alike (code_url aside).
      const inputs = (text: string) => {
        const params = { ...(parse(text) as Obj).root.inputDefinitions.parameters }
        delete params.code_url
        return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, [(v as Obj).parameterType, (v as Obj).defaultValue]]))
      }
      expect(inputs(kfp)).toEqual(inputs(readFileSync(join(TEMPLATES, `${flow}.kfp.yaml`), 'utf8')))
    })
  })

  it('notices a template that drifts from what generate writes', async () => {
    const dir = tempDir()
    const kfp = await generateFile(join(FLOWS, 'nested_foreach_flow.py'), join(dir, 'p.kfp.yaml'))
    const drifted = readFileSync(join(TEMPLATES, 'nested_foreach_flow.kfp.yaml'), 'utf8').replace(
      "split_index: {componentInputParameter: pipelinechannel--outer-splits-loop-item}",
      "split_index: {componentInputParameter: pipelinechannel--start-splits-loop-item}",
    )
    expect(normalised(kfpWiring(kfp))).not.toEqual(normalised(kfpWiring(drifted)))
  })

  describe('for a corpus of graph shapes', () => {
    it('writes pipelines the kfp SDK loads strictly, Argo lints strictly, and that wire every step as Metaflow nests it', async () => {
      const dir = tempDir()
      const kfpFiles: string[] = []
      const argoFiles: string[] = []
      for (const flow of [...SHAPES, ...TEMPLATE_FLOWS]) {
        const file = existsSync(join(CORPUS, `${flow}.py`)) ? join(CORPUS, `${flow}.py`) : join(FLOWS, `${flow}.py`)
        const graph = await metaflowGraph(file)
        const code = ['--code-url', `file://${file}`, '--datastore-root', join(dir, '.metaflow')]
        const kfp = await generateFile(file, join(dir, `${flow}.kfp.yaml`), code)
        const argo = await generateFile(file, join(dir, `${flow}.argo.yaml`), [...code, '--format', 'argo'])
        expect(wiringProblems(kfpWiring(kfp), graph), `${flow} kfp`).toEqual([])
        expect(wiringProblems(argoWiring(argo), graph), `${flow} argo`).toEqual([])
        kfpFiles.push(join(dir, `${flow}.kfp.yaml`))
        argoFiles.push(join(dir, `${flow}.argo.yaml`))
      }
      const k = await kfpCheck(kfpFiles)
      expect(k.output).toBe('ok\n')
      const a = await argoLint(argoFiles)
      expect(a.output).toMatch(/no linting errors found/)
      expect(a.ok).toBe(true)
    }, 300_000)

    it('nests foreaches three deep with one loop per level and joins from split_count, never a collected list', async () => {
      const dir = tempDir()
      const kfp = parse(await generateFile(join(CORPUS, 'triple_foreach_flow.py'), join(dir, 'p.yaml'))) as Obj
      expect(Object.keys(kfp.components).filter((c) => c.startsWith('comp-for-loop-')).sort()).toEqual(['comp-for-loop-split-x', 'comp-for-loop-split-y', 'comp-for-loop-split-z'])
      const inner = kfp.deploymentSpec.executors['exec-inner'].container.args as string[]
      expect(inner[inner.indexOf('--split-path') + 1]).toBe("{{$.inputs.parameters['split_path_0']}},{{$.inputs.parameters['split_path_1']}},{{$.inputs.parameters['split_path_2']}}")
      expect(JSON.stringify(kfp)).not.toMatch(/Collected|collected/)
    })
  })

  describe('carries what the flow decides at deploy time', () => {
    const linear = join(CORPUS, 'linear_flow.py')

    it('evaluates a function default at generate time, which used to reach the step as None (Metaflow tutorials 01 and 02 failed)', async () => {
      const dir = tempDir()
      const kfp = parse(await generateFile(linear, join(dir, 'p.yaml'))) as Obj
      expect(kfp.root.inputDefinitions.parameters).toMatchObject({
        tag_name: { parameterType: 'STRING', defaultValue: 'tag-linearflow', description: 'a default computed by a function' },
        count: { parameterType: 'NUMBER_INTEGER', defaultValue: 3 },
        ratio: { parameterType: 'NUMBER_DOUBLE', defaultValue: 0.5 },
        loud: { parameterType: 'BOOLEAN', defaultValue: false },
        shape: { parameterType: 'STRING', defaultValue: '{"rows": 2}' },
      })
      const argo = parse(await generateFile(linear, join(dir, 'a.yaml'), ['--format', 'argo'])) as Obj
      expect(argo.spec.arguments.parameters).toContainEqual({ name: 'tag_name', value: 'tag-linearflow', description: 'a default computed by a function' })
    })

    it("reads the flow through Metaflow's CLI, so a Config's values reach parameter defaults and @environment", async () => {
      const dir = tempDir()
      const kfp = parse(await generateFile(join(CORPUS, 'config_flow.py'), join(dir, 'p.yaml'), [], { cwd: dir })) as Obj
      expect(kfp.root.inputDefinitions.parameters.alpha).toMatchObject({ parameterType: 'NUMBER_INTEGER', defaultValue: 2 })
      expect(kfp.root.inputDefinitions.parameters.settings).toBeUndefined()
      expect(kfp.deploymentSpec.executors['exec-start'].container.env).toEqual([{ name: 'MODE', value: 'fast' }])
      // and it leaves nothing behind in the folder it ran from
      expect(readdirSync(dir)).toEqual(['p.yaml'])
    })

    it('quotes a parameter named n and a default of yes, which the Go YAML 1.1 parsers of Argo and KFP read as booleans (argo lint failed on the name)', async () => {
      const dir = tempDir()
      const flow = join(dir, 'yaml_words_flow.py')
      writeFileSync(flow, [
        'from metaflow import FlowSpec, Parameter, step',
        'class YamlWordsFlow(FlowSpec):',
        '    n = Parameter("n", default="yes")',
        '    on = Parameter("on", type=int, default=1)',
        '    @step',
        '    def start(self):',
        '        self.next(self.end)',
        '    @step',
        '    def end(self):',
        '        pass',
        'if __name__ == "__main__":',
        '    YamlWordsFlow()',
        '',
      ].join('\n'))
      const argo = await generateFile(flow, join(dir, 'a.yaml'), ['--format', 'argo'])
      const kfp = await generateFile(flow, join(dir, 'p.yaml'))
      expect(argo).toContain('- name: "n"\n        value: "yes"')
      expect(kfp).toContain('"n":\n        parameterType: STRING\n        defaultValue: "yes"')
      const lint = await argoLint([join(dir, 'a.yaml')])
      expect(lint.output).toMatch(/no linting errors found/)
      expect((await kfpCheck([join(dir, 'p.yaml')])).output).toBe('ok\n')
    })

    it('sets a default with --param, checked against the parameter type', async () => {
      const dir = tempDir()
      const kfp = parse(await generateFile(linear, join(dir, 'p.yaml'), ['--param', 'count=7', '--param', 'loud=true'])) as Obj
      expect(kfp.root.inputDefinitions.parameters.count.defaultValue).toBe(7)
      expect(kfp.root.inputDefinitions.parameters.loud.defaultValue).toBe(true)
      const bad = await generate(linear, ['--param', 'count=seven'])
      expect(bad.code).toBe(64)
      expect(bad.stderr.trim()).toBe('metaflow-kfp: error: failed to set parameter count: "seven" is not a whole number (give --param count=VALUE as the flow declares it)')
      const unknown = await generate(linear, ['--param', 'nope=1'])
      expect(unknown.code).toBe(64)
      expect(unknown.stderr).toMatch(/failed to set parameter nope: LinearFlow has no such Parameter/)
    })

    it('gives @environment variables to the step, which never reached it before', async () => {
      const dir = tempDir()
      const kfp = parse(await generateFile(linear, join(dir, 'p.yaml'))) as Obj
      expect(kfp.deploymentSpec.executors['exec-middle'].container.env).toEqual([{ name: 'GREETING', value: 'hello from @environment' }])
      expect(kfp.deploymentSpec.executors['exec-start'].container.env).toBeUndefined()
      const argo = parse(await generateFile(linear, join(dir, 'a.yaml'), ['--format', 'argo'])) as Obj
      const middle = argo.spec.templates.find((t: Obj) => t.name === 'middle')
      expect(middle.container.env).toEqual([{ name: 'GREETING', value: 'hello from @environment' }])
    })

    it('writes @catch and @retry as a retry policy with backoff fields (maxRetryCount alone never retries on KFP 2.14-2.17) and --max-user-code-retries, which stayed 0 so @retry with @catch never retried', async () => {
      const dir = tempDir()
      const flow = join(dir, 'retry_flow.py')
      writeFileSync(flow, [
        'from metaflow import FlowSpec, catch, retry, step',
        'class RetryFlow(FlowSpec):',
        '    @catch(var="e")',
        '    @retry(times=2, minutes_between_retries=1)',
        '    @step',
        '    def start(self):',
        '        self.next(self.end)',
        '    @step',
        '    def end(self):',
        '        pass',
        'if __name__ == "__main__":',
        '    RetryFlow()',
        '',
      ].join('\n'))
      const kfp = parse(await generateFile(flow, join(dir, 'p.yaml'))) as Obj
      // Metaflow's own count: 2 user-code retries plus @catch's 3 fallback attempts.
      expect(kfp.root.dag.tasks.start.retryPolicy).toEqual({ maxRetryCount: 5, backoffDuration: '60s', backoffFactor: 1, backoffMaxDuration: '259200s' })
      expect(kfp.root.dag.tasks.end.retryPolicy).toBeUndefined()
      const args = kfp.deploymentSpec.executors['exec-start'].container.args as string[]
      expect(args[args.indexOf('--max-user-code-retries') + 1]).toBe('2')
      const argo = parse(await generateFile(flow, join(dir, 'a.yaml'), ['--format', 'argo'])) as Obj
      const start = argo.spec.templates.find((t: Obj) => t.name === 'start')
      expect(start.retryStrategy).toEqual({ limit: '5', retryPolicy: 'Always', backoff: { duration: '60s', factor: '1' } })
      expect(start.container.args).toEqual(expect.arrayContaining(['--retry-count', '{{retries}}', '--max-user-code-retries', '2']))
      const end = argo.spec.templates.find((t: Obj) => t.name === 'end')
      expect(end.container.args).not.toContain('{{retries}}')
    })

    it('writes @resources as requests and limits and @timeout as the Argo pod deadline', async () => {
      const dir = tempDir()
      const kfp = parse(await generateFile(linear, join(dir, 'p.yaml'))) as Obj
      expect(kfp.deploymentSpec.executors['exec-start'].container.resources).toEqual({
        resourceCpuRequest: '2', resourceCpuLimit: '2', resourceMemoryRequest: '512M', resourceMemoryLimit: '512M',
        // the numeric fields older KFP backends read, as the kfp SDK writes them: cores and GB
        cpuRequest: 2, cpuLimit: 2, memoryRequest: 0.512, memoryLimit: 0.512,
      })
      const argo = parse(await generateFile(linear, join(dir, 'a.yaml'), ['--format', 'argo'])) as Obj
      const start = argo.spec.templates.find((t: Obj) => t.name === 'start')
      expect(start.container.resources).toEqual({ requests: { cpu: '2', memory: '512M' }, limits: { cpu: '2', memory: '512M' } })
      expect(start.activeDeadlineSeconds).toBe(900)
      expect(argo.spec.templates.find((t: Obj) => t.name === 'end').activeDeadlineSeconds).toBeUndefined()
    })

    it('carries the resolved settings, flag over environment, into every task and the image from --image', async () => {
      const dir = tempDir()
      const r = await generate(join(FLOWS, 'hello_flow.py'), ['--output', join(dir, 'p.yaml'), '--code-url', 'https://example.com/hello_flow.py', '--datastore', 's3', '--datastore-root', 's3://bucket/mf', '--image', 'registry.example.com/mf:1'], {
        env: { METAFLOW_AWS_ARN: 'arn:aws:iam::123456789012:role/team' },
      })
      expect(r.code).toBe(0)
      const kfp = parse(readFileSync(join(dir, 'p.yaml'), 'utf8')) as Obj
      for (const e of Object.values(kfp.deploymentSpec.executors) as Obj[]) {
        expect(e.container.image).toBe('registry.example.com/mf:1')
        expect(e.container.env).toEqual([
          { name: 'METAFLOW_DEFAULT_DATASTORE', value: 's3' },
          { name: 'METAFLOW_DATASTORE_SYSROOT_S3', value: 's3://bucket/mf' },
          { name: 'METAFLOW_AWS_ARN', value: 'arn:aws:iam::123456789012:role/team' },
        ])
      }
    })
  })

  it("gives a @timeout step a pod deadline on KFP too, in the PlatformSpec as kfp-kubernetes' set_timeout writes it, which the SDK, KFP's rules, run-local's reader and submit accept", async () => {
    const dir = tempDir()
    const file = join(dir, 'p.yaml')
    const text = await generateFile(join(CORPUS, 'linear_flow.py'), file)
    const docs = parseAllDocuments(text).map((d) => d.toJS() as Obj)
    expect(docs).toHaveLength(2)
    // The kfp SDK's own output for a task with kubernetes.set_timeout(task, 900): the same entry.
    const reference = execFileSync(PYTHON, ['-c', [
      'import sys, tempfile, os, yaml',
      'from kfp import dsl, compiler, kubernetes',
      '@dsl.container_component',
      'def start():',
      '    return dsl.ContainerSpec(image="x", command=["/a"])',
      '@dsl.pipeline(name="p")',
      'def p():',
      '    kubernetes.set_timeout(start(), 900)',
      'out = os.path.join(tempfile.mkdtemp(), "p.yaml")',
      'compiler.Compiler().compile(p, out)',
      'print(yaml.safe_dump(list(yaml.safe_load_all(open(out)))[1]))',
    ].join('\n')], { encoding: 'utf8' })
    expect(docs[1]).toEqual(parse(reference))
    expect(Object.keys(docs[1]?.platforms.kubernetes.deploymentSpec.executors)).toEqual(['exec-start'])
    expect((await kfpCheck([file])).output).toBe('ok\n')
    const rules = await kfpRules([file])
    expect(rules.lines).toEqual(['ok'])
    expect(rules.code).toBe(0)
    // run-local reads the two documents (a dry run would not: the generate-run corpus runs linear_flow to the end).
    const standin = await startStandIn(dir, { multi_user: false })
    try {
      const r = await runAgent(['submit', file, '--host', standin.url], { env: submitEnv(tempDir()) })
      expect(r.stderr).not.toMatch(/error:/)
      expect(r.code).toBe(0)
      const run = (await standin.runs()).find((x) => x.run_id === runIdOf(r)) as Obj
      expect(run.pipeline_spec.platform_spec).toEqual(docs[1])
    } finally {
      await standin.stop()
    }
  }, 180_000)

  describe('stores an IncludeFile in the datastore, as argo-workflows create does', () => {
    const flow = join(CORPUS, 'include_file_flow.py')

    it("makes each IncludeFile input default to Metaflow's descriptor of the default file stored in the local datastore, where generate used to refuse the flow", async () => {
      const dir = tempDir()
      const root = join(dir, '.metaflow')
      const kfp = parse(await generateFile(flow, join(dir, 'p.yaml'), ['--datastore-root', root, '--code-url', `file://${flow}`])) as Obj
      const params = kfp.root.inputDefinitions.parameters
      expect(params.notes).toMatchObject({ parameterType: 'STRING', isOptional: true, description: 'a text file' })
      const notes = JSON.parse(params.notes.defaultValue as string)
      const blob = JSON.parse(params.blob.defaultValue as string)
      expect(notes).toMatchObject({ type: 'uploader-v2', 'sub-type': 'uploaded', is_text: true })
      expect(blob).toMatchObject({ type: 'uploader-v2', is_text: false })
      expect(notes.url).toMatch(new RegExp(`^local://${root}/data/IncludeFileFlow/[0-9a-f]{40}$`))
      // Metaflow's own loader reads back exactly the files' content.
      expect(includedContent(params.notes.defaultValue)).toBe(readFileSync(join(CORPUS, 'include_notes.txt')).toString('hex'))
      expect(includedContent(params.blob.defaultValue)).toBe(readFileSync(join(CORPUS, 'include_blob.bin')).toString('hex'))
      const argo = parse(await generateFile(flow, join(dir, 'a.yaml'), ['--datastore-root', root, '--code-url', `file://${flow}`, '--format', 'argo'])) as Obj
      expect(argo.spec.arguments.parameters.find((p: Obj) => p.name === 'blob').value).toBe(params.blob.defaultValue)
    })

    it('stores the file --param names instead of the default, and refuses a file that is not there with one line', async () => {
      const dir = tempDir()
      writeFileSync(join(dir, 'other.txt'), 'other notes\n')
      const root = join(dir, '.metaflow')
      const kfp = parse(await generateFile(flow, join(dir, 'p.yaml'), ['--datastore-root', root, '--code-url', `file://${flow}`, '--param', 'notes=other.txt'], { cwd: dir })) as Obj
      expect(includedContent(kfp.root.inputDefinitions.parameters.notes.defaultValue)).toBe(Buffer.from('other notes\n').toString('hex'))
      const r = await generate(flow, ['--datastore-root', root, '--code-url', `file://${flow}`, '--param', 'notes=missing.txt', '--output', join(dir, 'q.yaml')], { cwd: dir })
      expect(r.code).toBe(64)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr).toMatch(/failed to read the flow .*: parameter notes: failed to store its file in the datastore: .*could not open file 'missing\.txt'/)
      expect(existsSync(join(dir, 'q.yaml'))).toBe(false)
    })

    it('lets a run give another file in place of the stored one, as Metaflow takes a path at init', async () => {
      const dir = tempDir()
      const root = join(dir, '.metaflow')
      const pipeline = join(dir, 'p.yaml')
      await generateFile(flow, pipeline, ['--datastore-root', root, '--code-url', `file://${flow}`])
      writeFileSync(join(dir, 'other.txt'), 'first of the other notes\nsecond\n')
      const r = await runAgent(['run-local', pipeline, '--code-url', `file://${flow}`, '--python', PYTHON, '--datastore-root', root, '--param', `notes=${join(dir, 'other.txt')}`], { cwd: dir, env: agentEnv() })
      expect(r.stderr).not.toMatch(/error:/)
      expect(r.code).toBe(0)
      const pathspec = /^Metaflow run: (\S+)$/m.exec(r.stdout)?.[1] as string
      const report = await metaflowRun(pathspec, localClientEnv(dir))
      expect(report.successful).toBe(true)
      expect(report.end.first_line).toBe('first of the other notes')
      expect(report.end.blob_sha256).toBe(createHash('sha256').update(readFileSync(join(CORPUS, 'include_blob.bin'))).digest('hex'))
    }, 180_000)

    it("stores it on S3 with the user's own credentials, where Metaflow's loader reads it", async () => {
      const moto = await startMoto()
      try {
        await makeBucket(moto.endpoint, 'include-bucket')
        const dir = tempDir()
        const r = await generate(flow, ['--datastore', 's3', '--datastore-root', 's3://include-bucket/mf', '--s3-endpoint-url', moto.endpoint, '--code-url', 'https://example.com/f.py', '--output', join(dir, 'p.yaml')], { env: { ...MOTO_KEYS } })
        expect(r.stderr).not.toMatch(/error/)
        expect(r.code).toBe(0)
        const notes = (parse(readFileSync(join(dir, 'p.yaml'), 'utf8')) as Obj).root.inputDefinitions.parameters.notes.defaultValue as string
        expect(JSON.parse(notes).url).toMatch(/^s3:\/\/include-bucket\/mf\/data\/IncludeFileFlow\/[0-9a-f]{40}$/)
        expect(includedContent(notes, { METAFLOW_S3_ENDPOINT_URL: moto.endpoint, ...MOTO_KEYS })).toBe(readFileSync(join(CORPUS, 'include_notes.txt')).toString('hex'))
        // With no S3 root there is nowhere to store it: one line that says what to set.
        const noRoot = await generate(flow, ['--datastore', 's3', '--code-url', 'https://example.com/f.py'], { env: { ...MOTO_KEYS } })
        expect(noRoot.code).toBe(64)
        expect(noRoot.stderr.trim()).toMatch(/^metaflow-kfp: error: failed to read the flow .*: parameter \w+: an IncludeFile's file must be stored in the datastore, and there is none to store it in \(set --datastore-root s3:\/\/bucket\/prefix/)
      } finally {
        await moto.stop()
      }
    }, 120_000)
  })

  describe("carries @project's branch to every task", () => {
    const flow = join(CORPUS, 'project_flow.py')

    it('passes --branch and --production on to every task, as argo-workflows create does', async () => {
      const dir = tempDir()
      const kfp = parse(await generateFile(flow, join(dir, 'p.yaml'), ['--branch', 'feature_x'])) as Obj
      for (const e of Object.values(kfp.deploymentSpec.executors) as Obj[]) {
        const args = e.container.args as string[]
        expect(args[args.indexOf('--branch') + 1]).toBe('feature_x')
      }
      const argo = parse(await generateFile(flow, join(dir, 'a.yaml'), ['--production', '--format', 'argo'])) as Obj
      for (const t of (argo.spec.templates as Obj[]).filter((x) => x.container)) expect(t.container.args).toContain('--production')
      const plain = parse(await generateFile(flow, join(dir, 'q.yaml'))) as Obj
      expect(JSON.stringify(plain)).not.toMatch(/--branch|--production/)
    })

    it("puts every task on the user's branch without --branch, as Metaflow computes it for the task's user", async () => {
      const dir = tempDir()
      const pipeline = join(dir, 'p.yaml')
      await generateFile(flow, pipeline, ['--format', 'argo'])
      const r = await runAgent(['run-local', pipeline, '--code-url', `file://${flow}`, '--python', PYTHON, '--datastore-root', join(dir, '.metaflow')], { cwd: dir, env: agentEnv({ METAFLOW_USER: 'ana' }) })
      expect(r.code, r.stderr).toBe(0)
      const report = await metaflowRun(/^Metaflow run: (\S+)$/m.exec(r.stdout)?.[1] as string, localClientEnv(dir))
      expect(report.end.end_branch).toBe('user.ana')
    }, 180_000)

    it('refuses --branch for a flow without @project, and a branch name Metaflow refuses, with one line each', async () => {
      const noProject = await generate(join(FLOWS, 'hello_flow.py'), ['--branch', 'x'])
      expect(noProject.code).toBe(64)
      expect(noProject.stderr.trim()).toMatch(/^metaflow-kfp: error: failed to read the flow .*hello_flow\.py with --branch: the flow has no @project, the decorator that option belongs to \(add @project/)
      const bad = await generate(flow, ['--branch', 'Feature-X'])
      expect(bad.code).toBe(64)
      expect(bad.stderr.trim()).toMatch(/^metaflow-kfp: error: failed to accept --branch "Feature-X": Metaflow's @project takes lowercase letters, digits and underscores/)
    })
  })

  describe('refuses what it cannot carry, by name, with exit 64', () => {
    it.each([
      ['parallel_flow.py', 'failed to generate a pipeline for step start: self.next(..., num_parallel=N) for @parallel is not supported'],
    ])('%s', async (file, message) => {
      const dir = tempDir()
      const r = await generate(join(CORPUS, file), ['--output', join(dir, 'p.yaml')])
      expect(r.code).toBe(64)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr).toContain(`metaflow-kfp: error: ${message}`)
      expect(readdirSync(dir)).toEqual([])
    })

    it('a flow file that fails to import, with the exception Metaflow saw', async () => {
      const dir = tempDir()
      writeFileSync(join(dir, 'broken.py'), 'import no_such_module_here\n')
      const r = await generate(join(dir, 'broken.py'), [], { cwd: dir })
      expect(r.code).toBe(64)
      expect(r.stderr.trim()).toMatch(/^metaflow-kfp: error: failed to read the flow .*broken\.py: ModuleNotFoundError: No module named 'no_such_module_here' \(/)
    })

    it('an interpreter that does not exist', async () => {
      const r = await runGenerateWithPython(join(FLOWS, 'hello_flow.py'), '/nonexistent/python3')
      expect(r.code).toBe(64)
      expect(r.stderr).toMatch(/failed to start \/nonexistent\/python3 to read the flow/)
    })

    it("a graph Metaflow's own check refuses (a join that is also a split), which generate wrote as a pipeline and exited 0", async () => {
      const dir = tempDir()
      const r = await generate(join(FIXTURE_FLOWS, 'join_split_flow.py'), ['--output', join(dir, 'p.yaml')])
      expect(r.code).toBe(64)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr).toMatch(/^metaflow-kfp: error: failed to read the flow .*join_split_flow\.py: Metaflow's graph check refused it: line \d+: Step \*join\* is both a join step/)
      expect(readdirSync(dir)).toEqual([])
    })

    it('a temp folder it cannot write, which exited 70 as an internal error under docker run --read-only', async () => {
      const dir = tempDir()
      const r = await generate(join(FLOWS, 'hello_flow.py'), ['--output', join(dir, 'p.yaml')], { env: { TMPDIR: join(dir, 'no-such-folder') } })
      expect(r.code).toBe(64)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr).toMatch(/^metaflow-kfp: error: failed to make a scratch folder in .*no-such-folder: .*ENOENT.*--tmpfs \/tmp/)
      expect(readdirSync(dir)).toEqual([])
    })
  })

  it("packages the flow's folder into the datastore without --code-url, pinned by its sha256, the same bytes for the same code", async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'flows', 'lib'), { recursive: true })
    mkdirSync(join(dir, 'flows', '.git'))
    copyFileSync(join(FLOWS, 'branch_flow.py'), join(dir, 'flows', 'branch_flow.py'))
    writeFileSync(join(dir, 'flows', 'lib', 'helper.py'), 'X = 1\n')
    writeFileSync(join(dir, 'flows', 'data.csv'), 'a,b\n')
    writeFileSync(join(dir, 'flows', '.git', 'config.py'), 'hidden\n')
    const root = join(dir, 'store', '.metaflow')
    const once = async (out: string, format: string) => {
      const r = await generate(join(dir, 'flows', 'branch_flow.py'), ['--datastore-root', root, '--format', format, '--output', join(dir, out)])
      expect(r.code).toBe(0)
      return readFileSync(join(dir, out), 'utf8')
    }
    const kfp = parse(await once('a.yaml', 'kfp')) as Obj
    const url = kfp.root.inputDefinitions.parameters.code_url.defaultValue as string
    const m = /^file:\/\/(.*\/BranchFlow\/kfp-code\/([0-9a-f]{64})\.tar\.gz)$/.exec(url)
    expect(m?.[1]?.startsWith(root)).toBe(true)
    const [, path, sha] = m as RegExpExecArray
    expect(createHash('sha256').update(readFileSync(path as string)).digest('hex')).toBe(sha)
    for (const e of Object.values(kfp.deploymentSpec.executors) as Obj[]) {
      expect(e.container.args).toEqual(expect.arrayContaining(['--code-sha256', sha, '--flow-file', 'branch_flow.py']))
    }
    // Metaflow's suffixes only, hidden folders left out.
    const listing = execFileSync('tar', ['tzf', path as string], { encoding: 'utf8' }).trim().split('\n').sort()
    expect(listing).toEqual(['branch_flow.py', 'lib/helper.py'])
    const argo = parse(await once('b.yaml', 'argo')) as Obj
    expect(argo.spec.arguments.parameters[0]).toEqual({ name: 'code-url', value: url })
    writeFileSync(join(dir, 'flows', 'lib', 'helper.py'), 'X = 2\n')
    const changed = parse(await once('c.yaml', 'kfp')) as Obj
    expect(changed.root.inputDefinitions.parameters.code_url.defaultValue).not.toBe(url)
  })

  it('writes to stdout without --output, and never leaves a partial file when the folder is missing', async () => {
    const dir = tempDir()
    const r = await generate(join(FLOWS, 'hello_flow.py'), ['--format', 'argo'])
    expect(r.code).toBe(0)
    expect(parse(r.stdout).kind).toBe('Workflow')
    const missing = await generate(join(FLOWS, 'hello_flow.py'), ['--output', join(dir, 'no', 'such', 'p.yaml')])
    expect(missing.code).toBe(74)
    expect(missing.stderr).toMatch(/failed to write .*p\.yaml: .*ENOENT.* \(check that its folder exists and is writable\)/)
    expect(readdirSync(dir)).toEqual([])
  })
})

/** The content Metaflow's own IncludedFile loader reads from a descriptor, as hex. */
function includedContent(descriptor: string, env: Record<string, string> = {}): string {
  const script = [
    'import json, sys',
    'from metaflow.includefile import IncludedFile',
    'v = IncludedFile(json.loads(sys.argv[1])).decode("p")',
    'sys.stdout.write((v.encode("utf-8") if isinstance(v, str) else v).hex())',
  ].join('\n')
  return execFileSync(PYTHON, ['-c', script, descriptor], { encoding: 'utf8', env: { ...agentEnv(env), METAFLOW_DEFAULT_DATASTORE: 'local' } })
}

function runGenerateWithPython(flow: string, python: string) {
  // --python given twice would be refused; generate() passes the project's, so call the agent directly.
  return runAgent(['generate', flow, '--python', python], { env: agentEnv() })
}
