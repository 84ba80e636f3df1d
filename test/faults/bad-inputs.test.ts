// Bad values for every flag the agent's --help lists and every profile key its `config` prints: exit 64, one error line, nothing written.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { agentEnv } from '../helpers/agent-process'
import { AGENT, PYTHON, REPO } from '../helpers/paths'
import { MOTO_KEYS } from '../helpers/moto'
import { STAGE_FLOW, errorLines, expectNoSecrets, expectNoStack, filesUnder, runBounded, shown, useCaseDirs } from './fault-kit'
import type { BoundedRun } from './fault-kit'

const tempDir = useCaseDirs('mfkfp-badinput-')
const FLOW_URL = `file://${STAGE_FLOW}`
const TEMPLATE = join(REPO, 'pipeline-templates', 'hello_flow.kfp.yaml')
const HUGE_NAME = 'a'.repeat(300)
const HUGE_NUMBER = '99999999999999999999'
type Command = string

/** The commands `metaflow-kfp --help` lists, read from the agent itself so a new command without cases fails this suite. */
function helpCommands(): Command[] {
  const help = execFileSync(AGENT, ['--help'], { encoding: 'utf8', timeout: 30_000, env: agentEnv() })
  return [...help.matchAll(/^\s+metaflow-kfp ([a-z][a-z-]*)\b/gm)].map((m) => m[1] as string)
}
const COMMANDS = helpCommands()
/** Where a command would reach KFP: a loopback port nothing listens on, so a value that slips through fails fast. */
const NO_KFP = 'http://127.0.0.1:9'

/** The long flags `metaflow-kfp COMMAND --help` lists, read from the agent itself so a new flag without a case fails this suite. */
function helpFlags(command: Command): string[] {
  const help = execFileSync(AGENT, [command, '--help'], { encoding: 'utf8', timeout: 30_000, env: agentEnv() })
  const flags = [...help.matchAll(/^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)\b/gm)].map((m) => m[1] as string)
  return [...new Set(flags)].filter((f) => f !== 'help' && f !== 'version')
}

/** The settings `metaflow-kfp config` resolves, one `KEY=value  # source` line each, read from the agent itself. */
function settingKeys(): string[] {
  const out = execFileSync(AGENT, ['config'], { encoding: 'utf8', timeout: 30_000, env: agentEnv({ HOME: REPO, METAFLOW_HOME: join(REPO, 'no-such-folder') }) })
  return [...out.matchAll(/^([A-Z][A-Z0-9_]*)=.*  # (?:default|profile|environment|flag)/gm)].map((m) => m[1] as string).filter((k) => !k.startsWith('AWS_'))
}

/** A bad value: a name for the test and the argv that replaces the flag (several words when it needs a companion flag). */
interface Bad {
  what: string
  argv: string[]
}
const v = (flag: string, what: string, value: string, ...companions: string[]): Bad => ({ what, argv: [...companions, `--${flag}`, value] })
const names = (flag: string, ...companions: string[]): Bad[] => [
  v(flag, 'empty', '', ...companions),
  v(flag, '..', '..', ...companions),
  v(flag, 'a path with /', 'a/b', ...companions),
  v(flag, 'an absolute path', '/etc', ...companions),
  v(flag, 'an unresolved KFP placeholder', '{{$.pipeline_job_uuid}}', ...companions),
  v(flag, 'longer than a file name', HUGE_NAME, ...companions),
]
const ints = (flag: string, ...companions: string[]): Bad[] => [
  v(flag, 'empty', '', ...companions),
  v(flag, 'negative', '-1', ...companions),
  v(flag, 'a fraction', '1.5', ...companions),
  v(flag, 'not a number', 'abc', ...companions),
  v(flag, 'NaN', 'NaN', ...companions),
  v(flag, 'Infinity', 'Infinity', ...companions),
  v(flag, 'beyond a safe integer', HUGE_NUMBER, ...companions),
]
const seconds = (flag: string): Bad[] => [
  v(flag, 'empty', ''),
  v(flag, 'negative', '-1'),
  v(flag, 'not a number', 'abc'),
  v(flag, 'NaN', 'NaN'),
  v(flag, 'Infinity', 'Infinity'),
]
const JOIN = ['--join-foreach', 'explore']

/** Bad values by flag, for `step` (and `init` and `config`, which share the flags of the same name). */
const BAD: Record<string, Bad[]> = {
  'user': [v('user', 'empty', '')],
  'datastore': [v('datastore', 'empty', ''), v('datastore', 'an unknown datastore', 'gcs')],
  'datastore-root': [
    v('datastore-root', 'empty', ''),
    v('datastore-root', 'an s3 root without a bucket', 's3://', '--datastore', 's3'),
    v('datastore-root', 'a local path for the s3 datastore', '/tmp/datastore', '--datastore', 's3'),
  ],
  'metadata': [v('metadata', 'empty', ''), v('metadata', 'an unknown metadata provider', 'bogus')],
  'role-arn': [v('role-arn', 'empty', ''), v('role-arn', 'not an ARN', 'my-role'), v('role-arn', 'an ARN with a short account', 'arn:aws:iam::12:role/x')],
  'aws-region': [v('aws-region', 'empty', ''), v('aws-region', 'a path', 'us-east-1/../x')],
  's3-endpoint-url': [v('s3-endpoint-url', 'empty', ''), v('s3-endpoint-url', 'not a URL', 'not a url'), v('s3-endpoint-url', 'not http(s)', 'ftp://127.0.0.1/')],
  'code-url': [v('code-url', 'empty', ''), v('code-url', 'not a URL', 'not a url'), v('code-url', 'an unknown scheme', 'gopher://example.com/flow.py')],
  'code-sha256': [v('code-sha256', 'empty', ''), v('code-sha256', 'too short', 'abc'), v('code-sha256', 'not hex', 'z'.repeat(64))],
  'allow-insecure-http': [{ what: 'not a boolean', argv: ['--allow-insecure-http=maybe'] }],
  'flow-file': [v('flow-file', 'empty', ''), v('flow-file', '..', '../flow.py'), v('flow-file', 'an absolute path', '/etc/passwd')],
  'flow-name': [v('flow-name', 'empty', ''), v('flow-name', '..', '..'), v('flow-name', 'a path with /', 'a/b'), v('flow-name', 'not an identifier', 'my flow'), v('flow-name', 'longer than a file name', HUGE_NAME)],
  'code-max-bytes': [...seconds('code-max-bytes'), v('code-max-bytes', 'zero', '0'), v('code-max-bytes', 'a fraction', '1.5')],
  'code-timeout': [...seconds('code-timeout'), v('code-timeout', 'zero', '0'), v('code-timeout', 'beyond the timer limit', '1e10')],
  'python': [v('python', 'empty', '')],
  'runtime': [v('runtime', 'empty', ''), v('runtime', 'unpinned', 'metaflow'), v('runtime', 'an installer option', '--index-url=http://127.0.0.1:9/simple')],
  'run-id': [...names('run-id'), v('run-id', '.', '.'), v('run-id', 'numeric', '123')],
  'tag': [v('tag', 'empty', '')],
  'param': [v('param', 'empty', ''), v('param', 'without a name', '=1'), v('param', 'without =', 'alpha'), v('param', 'a name that is no identifier', '1x=2'), v('param', 'a path as a name', '../x=1')],
  'params-json': [v('params-json', 'empty', ''), v('params-json', 'a list', '[1]'), v('params-json', 'broken JSON', '{"a":'), v('params-json', 'null', 'null'), v('params-json', 'a path as a name', '{"../x": 1}')],
  'task-id': [...names('task-id'), v('task-id', 'numeric', '123')],
  'input-paths': [v('input-paths', 'empty', ''), v('input-paths', '..', 'kfp-1/../x'), v('input-paths', 'a run of ..', '../start/start'), v('input-paths', 'a task of ..', 'kfp-1/start/..')],
  'parent': names('parent'),
  'parent-any': [...names('parent-any'), v('parent-any', 'an empty name in the list', 'a,,b'), v('parent-any', 'a name twice', 'a,a'), v('parent-any', 'a path in the list', 'a,../b')],
  'join-foreach': [...names('join-foreach', '--num-splits', '2'), v('join-foreach', 'a trailing comma', 'a,', '--num-splits', '2'), v('join-foreach', 'a path in the list', 'a,b/c', '--num-splits', '2')],
  'num-splits': [...ints('num-splits', ...JOIN), v('num-splits', 'zero', '0', ...JOIN)],
  'split-index': ints('split-index', '--parent', 'start'),
  'split-path': [v('split-path', 'not a number', 'a', '--parent', 'start'), v('split-path', 'negative', '-1', '--parent', 'start'), v('split-path', 'an empty index', '1,,2', '--parent', 'start'), v('split-path', 'a fraction', '1.5', '--parent', 'start'), v('split-path', 'beyond a safe integer', HUGE_NUMBER, '--parent', 'start')],
  'retry-count': [...ints('retry-count'), v('retry-count', 'beyond Metaflow\'s attempts', '6')],
  'max-user-code-retries': ints('max-user-code-retries'),
  'output-dir': [v('output-dir', 'empty', '')],
  'output': [v('output', 'empty', ''), v('output', 'without =', 'task_id'), v('output', 'an unknown output', 'bogus=/tmp/x'), v('output', 'without a path', 'task_id=')],
  'work-dir': [v('work-dir', 'empty', '')],
  'keep-work-dir': [{ what: 'not a boolean', argv: ['--keep-work-dir=maybe'] }],
  'grace-period': seconds('grace-period'),
  'branch': [v('branch', 'empty', ''), v('branch', 'with capitals', 'Feature'), v('branch', 'a path', 'a/../b'), v('branch', 'longer than @project allows', 'b'.repeat(129))],
  'production': [{ what: 'not a boolean', argv: ['--production=maybe'] }],
}

/** Bad values of the flags `run-local` defines itself. */
const RUN_LOCAL_BAD: Record<string, Bad[]> = {
  'code-url': [v('code-url', 'empty', ''), v('code-url', 'not a URL', 'not a url')],
  'param': [v('param', 'empty', ''), v('param', 'without =', 'who')],
  'parallelism': [...ints('parallelism'), v('parallelism', 'zero', '0')],
  'prestart': [...ints('prestart'), v('prestart', 'above the parallelism limit', '1001')],
  'python': [v('python', 'empty', '')],
  'datastore-root': [v('datastore-root', 'empty', '')],
}

/** Bad values of the flags that mean something else, or only exist, in the user's commands (generate, submit, status, terminate). */
const KFP_BAD: Record<string, Bad[]> = {
  'host': [v('host', 'empty', ''), v('host', 'not a URL', 'not a url'), v('host', 'not http(s)', 'ftp://127.0.0.1/')],
  'ui-host': [v('ui-host', 'empty', ''), v('ui-host', 'not a URL', 'not a url')],
  'token': [v('token', 'empty', '')],
  'cookie': [v('cookie', 'empty', ''), v('cookie', 'without =', 'session')],
  'namespace': [v('namespace', 'empty', ''), v('namespace', 'a path with /', 'team/../other')],
}
const GENERATE_BAD: Record<string, Bad[]> = {
  'image': [v('image', 'empty', ''), v('image', 'with spaces', 'my image:1')],
  'format': [v('format', 'empty', ''), v('format', 'an unknown format', 'yaml')],
  'output': [v('output', 'empty', '')],
  'name': [v('name', 'empty', ''), v('name', 'longer than KFP allows', HUGE_NAME)],
  'python': [v('python', 'empty', '')],
  'param': [v('param', 'empty', ''), v('param', 'without =', 'alpha')],
  'code-url': [v('code-url', 'empty', ''), v('code-url', 'not a URL', 'not a url')],
  'flow-file': [v('flow-file', 'empty', ''), v('flow-file', '..', '../flow.py')],
  'flow-name': [v('flow-name', 'empty', ''), v('flow-name', 'a path with /', 'a/b')],
}
const SUBMIT_BAD: Record<string, Bad[]> = {
  ...GENERATE_BAD,
  ...KFP_BAD,
  'experiment-name': [v('experiment-name', 'empty', '')],
  'run-name': [v('run-name', 'empty', '')],
  'pipeline-name': [v('pipeline-name', 'empty', '')],
  'wait': [{ what: 'not a boolean', argv: ['--wait=maybe'] }],
  'poll-interval': [...seconds('poll-interval'), v('poll-interval', 'zero', '0'), v('poll-interval', 'beyond an hour', '99999')],
  'progress': [{ what: 'not a boolean', argv: ['--progress=maybe'] }],
}
/** Per command, the flags whose bad values differ from step's; every other flag is tried with step's last bad value. */
const BY_COMMAND: Record<Command, Record<string, Bad[]>> = {
  'run-local': {},
  'generate': GENERATE_BAD,
  'submit': SUBMIT_BAD,
  'status': KFP_BAD,
  'terminate': KFP_BAD,
}

/** Bad positionals per command: the step name, a template or flow that does not exist, a run id that is no id. */
const POSITIONAL_BAD: Record<Command, Bad[]> = {
  'run-local': [{ what: 'a template that does not exist', argv: ['/no/such/template.yaml'] }],
  'generate': [{ what: 'a flow file that does not exist', argv: ['/no/such/flow.py'] }, { what: 'empty', argv: [''] }],
  'submit': [{ what: 'a pipeline file that does not exist', argv: ['/no/such/pipeline.yaml'] }, { what: 'empty', argv: [''] }],
  'status': [{ what: 'empty', argv: [''] }, { what: 'a path', argv: ['../runs/x'] }],
  'terminate': [{ what: 'empty', argv: [''] }, { what: 'a path', argv: ['../runs/x'] }],
}

/** Bad step names (the positional of `step`): each would become a folder of the datastore. */
const STEP_NAMES: Bad[] = [
  { what: 'empty', argv: [''] },
  { what: '..', argv: ['..'] },
  { what: 'a path out of the datastore', argv: ['../../../../escaped'] },
  { what: 'a path with /', argv: ['a/b'] },
  { what: "Metaflow's own _parameters", argv: ['_parameters'] },
  { what: 'longer than a file name', argv: [HUGE_NAME] },
  { what: 'an unresolved KFP placeholder', argv: ['{{$.inputs.parameters[\'step\']}}'] },
]

/** The argv of a command that would succeed, minus the flags a case replaces. */
function baseArgs(command: Command, dir: string, replaced: Set<string>): string[] {
  const common: [string, string][] = [
    ['code-url', FLOW_URL],
    ['run-id', 'kfp-bad-input'],
    ['python', PYTHON],
    ['datastore-root', join(dir, 'datastore', '.metaflow')],
  ]
  if (command === 'run-local') {
    return ['run-local', TEMPLATE, ...common.filter(([f]) => f !== 'run-id' && !replaced.has(f)).flatMap(([f, x]) => [`--${f}`, x])]
  }
  if (command === 'config') return ['config']
  if (command === 'generate') return ['generate', STAGE_FLOW, ...(replaced.has('python') ? [] : ['--python', PYTHON]), ...(replaced.has('output') ? [] : ['--output', join(dir, 'outputs', 'pipeline.yaml')])]
  if (command === 'submit') return ['submit', TEMPLATE, ...(replaced.has('host') ? [] : ['--host', NO_KFP])]
  if (command === 'status' || command === 'terminate') return [command, 'kfp-run-1', ...(replaced.has('host') ? [] : ['--host', NO_KFP])]
  if (command !== 'step' && command !== 'init') throw new Error(`no base command line for ${command}: add one, and its bad values`)
  const head = command === 'step' ? ['step', 'start'] : ['init']
  const flags = [...common, ['output-dir', join(dir, 'outputs')] as [string, string]]
  return [...head, ...flags.filter(([f]) => !replaced.has(f)).flatMap(([f, x]) => [`--${f}`, x])]
}

function flagsOf(argv: readonly string[]): Set<string> {
  return new Set(argv.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0] as string))
}

/** Exit 64, one `error:` line ending in what to do, no stack trace, and nothing written where a pipeline or the datastore would see it. */
function expectRefused(r: BoundedRun, dir: string): void {
  expect(r.timedOut, shown(r)).toBe(false)
  expect(r.code, shown(r)).toBe(64)
  const lines = errorLines(r)
  expect(lines, shown(r)).toHaveLength(1)
  expect(lines[0], shown(r)).toMatch(/^metaflow-kfp: error: .+ \(.+\)$/)
  expectNoStack(r)
  expectNoSecrets([r])
  expect(filesUnder(join(dir, 'outputs'))).toEqual([])
  expect(filesUnder(join(dir, 'datastore'))).toEqual([])
  // The agent's own temp folder (its TMPDIR) holds nothing after it ended.
  expect(filesUnder(join(dir, 'tmp'))).toEqual([])
}

async function refuse(argv: string[], dir: string, env: NodeJS.ProcessEnv = agentEnv({ HOME: dir, ...MOTO_KEYS })): Promise<void> {
  mkdirSync(join(dir, 'tmp'))
  // The folder exists, so a bad value that slips through reaches its write (generate --output) and shows as exit 0, not as a missing folder.
  mkdirSync(join(dir, 'outputs'))
  const r = await runBounded(argv, { env, tmp: join(dir, 'tmp'), boundMs: 60_000, cwd: dir })
  expectRefused(r, dir)
}

const HELP = Object.fromEntries(COMMANDS.map((c) => [c, helpFlags(c)])) as Record<Command, string[]>

function badFor(command: Command, flag: string): Bad[] {
  if (command === 'run-local') return RUN_LOCAL_BAD[flag] ?? []
  return BY_COMMAND[command]?.[flag] ?? BAD[flag] ?? []
}

describe('the bad-input tables', () => {
  it('cover every command `--help` lists', () => {
    expect(COMMANDS).toEqual(expect.arrayContaining(['step', 'init', 'config', 'run-local']))
    for (const command of COMMANDS) expect(() => baseArgs(command, '/x', new Set()), command).not.toThrow()
  })
  for (const command of COMMANDS) {
    it(`have a case for every flag \`${command} --help\` lists`, () => {
      expect(HELP[command]?.length).toBeGreaterThan(3)
      expect(HELP[command]?.filter((f) => !(badFor(command, f).length))).toEqual([])
    })
  }
})

describe.concurrent('a bad value of a step flag', () => {
  const cases = (HELP.step ?? []).flatMap((flag) => (BAD[flag] ?? []).map((bad) => ({ flag, ...bad })))
  for (const { flag, what, argv } of cases) {
    it(`--${flag} ${what} is refused with exit 64 and one line`, async () => {
      const dir = tempDir()
      await refuse([...baseArgs('step', dir, flagsOf(argv)), ...argv], dir)
    })
  }
  for (const { what, argv } of STEP_NAMES) {
    it(`a step name that is ${what} is refused with exit 64 and one line`, async () => {
      const dir = tempDir()
      const args = baseArgs('step', dir, new Set())
      args.splice(1, 1, ...argv)
      await refuse(args, dir)
    })
  }
})

describe.concurrent('a bad value of a flag of another command', () => {
  // Flags shared with step behave the same: one bad value each shows they are checked there too;
  // flags of a command's own get all of theirs.
  const others = COMMANDS.filter((c) => c !== 'step' && c !== 'run-local')
  const cases = others.flatMap((command) => (HELP[command] ?? []).flatMap((flag) => {
    const own = BY_COMMAND[command]?.[flag]
    const bads = own ?? (BAD[flag] ? [BAD[flag][BAD[flag].length - 1] as Bad] : [])
    return bads.map((bad) => ({ command, flag, bad }))
  }))
  for (const { command, flag, bad } of cases) {
    it(`${command} --${flag} ${bad.what} is refused with exit 64 and one line`, async () => {
      const dir = tempDir()
      await refuse([...baseArgs(command, dir, flagsOf(bad.argv)), ...bad.argv], dir)
    })
  }
  for (const command of COMMANDS.filter((c) => c !== 'step' && c !== 'run-local' && POSITIONAL_BAD[c])) {
    for (const bad of POSITIONAL_BAD[command] as Bad[]) {
      it(`${command} with a positional that is ${bad.what} is refused with exit 64 and one line`, async () => {
        const dir = tempDir()
        const args = baseArgs(command, dir, new Set())
        args.splice(1, 1, ...bad.argv)
        await refuse(args, dir)
      })
    }
  }
})

describe.concurrent('a bad value of a run-local flag', () => {
  const cases = (HELP['run-local'] ?? []).flatMap((flag) => (RUN_LOCAL_BAD[flag] ?? []).map((bad) => ({ flag, ...bad })))
  for (const { flag, what, argv } of cases) {
    it(`--${flag} ${what} is refused with exit 64 and one line`, async () => {
      const dir = tempDir()
      await refuse([...baseArgs('run-local', dir, flagsOf(argv)), ...argv], dir)
    })
  }
  it('a template that does not exist is refused with exit 64 and one line', async () => {
    const dir = tempDir()
    const args = baseArgs('run-local', dir, new Set())
    args[1] = join(dir, 'no-such-template.yaml')
    await refuse(args, dir)
  })
})

describe.concurrent('a bad value in the Metaflow profile', () => {
  const KEYS = settingKeys()
  const ENUMS: Record<string, string> = { METAFLOW_DEFAULT_DATASTORE: 'gcs', METAFLOW_DEFAULT_METADATA: 'bogus', METAFLOW_AWS_ARN: 'my-role' }
  const cases = KEYS.flatMap((key) => [
    { key, what: 'an object', value: { nested: 'x' } as unknown },
    { key, what: 'a list', value: ['s3'] as unknown },
    ...(ENUMS[key] ? [{ key, what: 'an unknown value', value: ENUMS[key] as unknown }] : []),
  ])

  it('has cases for every key `config` prints', () => {
    expect(KEYS).toContain('METAFLOW_USER')
    expect(KEYS).toContain('METAFLOW_DEFAULT_DATASTORE')
    expect(new Set(cases.map((c) => c.key))).toEqual(new Set(KEYS))
  })

  for (const { key, what, value } of cases) it(`${key} as ${what} is refused by step with exit 64 and one line naming it`, async () => {
    const dir = tempDir()
    mkdirSync(join(dir, '.metaflowconfig'))
    const profile = join(dir, '.metaflowconfig', 'config_bad.json')
    writeFileSync(profile, JSON.stringify({ [key]: value }))
    mkdirSync(join(dir, 'tmp'))
    const args = baseArgs('step', dir, new Set(['datastore-root']))
    const r = await runBounded(args, { env: agentEnv({ HOME: dir, METAFLOW_PROFILE: 'bad', ...MOTO_KEYS }), tmp: join(dir, 'tmp'), boundMs: 60_000, cwd: dir })
    expectRefused(r, dir)
    // The line says where the value came from: the key, or the profile file that holds it.
    expect(errorLines(r)[0]).toMatch(new RegExp(`${key}|config_bad\\.json`))
    expect(existsSync(join(dir, '.metaflow'))).toBe(false)
    expect(existsSync(profile)).toBe(true)
  })
})
