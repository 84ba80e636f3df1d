// The command line of the built agent: help, version, and one clear line for every bad input.
import { describe, expect, it } from 'vitest'
import { parseArgs } from '../agent/cli'
import { AgentError } from '../agent/errors'
import { applySettings, resolveSettings } from '../agent/settings'
import { runAgent } from './helpers/agent-process'

const base = ['--code-url', 'file:///x/flow.py', '--run-id', 'kfp-1']

describe('the built agent', () => {
  it('prints its version', async () => {
    const r = await runAgent(['--version'])
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
  })

  it('documents every command, option group and exit code in --help', async () => {
    const step = await runAgent(['step', '--help'])
    expect(step.code).toBe(0)
    for (const opt of ['--code-url', '--code-sha256', '--flow-file', '--python', '--runtime', '--user', '--datastore', '--datastore-root', '--run-id', '--task-id', '--input-paths', '--split-index', '--retry-count', '--max-user-code-retries', '--tag', '--param', '--output-dir', '--output', '--parent', '--join-foreach', '--num-splits', '--split-path']) {
      expect(step.stdout).toContain(opt)
    }
    expect(step.stdout).toMatch(/Examples:/)
    const top = await runAgent(['--help'])
    expect(top.stdout).toMatch(/step <step>/)
    expect(top.stdout).toMatch(/init/)
    expect(top.stdout).toMatch(/64 usage/)
  })

  it('answers a bad flag with exit 64 and one line that says what to do', async () => {
    const r = await runAgent(['step', 'start', ...base, '--retry-count', '9'])
    expect(r.code).toBe(64)
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^metaflow-kfp: error: failed to accept --retry-count 9: .*\(.+\)$/)
  })

  it('answers a missing required flag with exit 64', async () => {
    const r = await runAgent(['step', 'start', '--run-id', 'kfp-1'])
    expect(r.code).toBe(64)
    expect(r.stderr).toMatch(/code-url/)
  })

  it('answers a code URL that does not exist with exit 69', async () => {
    const r = await runAgent(['step', 'start', '--code-url', 'file:///nonexistent/flow.py', '--run-id', 'kfp-1'])
    expect(r.code).toBe(69)
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/failed to fetch file:\/\/\/nonexistent\/flow.py: .*ENOENT/)
  })
})

describe('parseArgs', () => {
  it('turns argv into a typed step config', () => {
    const p = parseArgs(['step', 'explore', ...base, '--parent', 'start', '--split-index', '2', '--output', 'task_id=/tmp/t', '--tag', 'a', '--tag', 'b'])
    expect(p.kind).toBe('run')
    if (p.kind !== 'run' || p.config.command !== 'step') throw new Error('not a step')
    expect(p.config).toMatchObject({ step: 'explore', runId: 'kfp-1', parents: ['start'], splitIndex: 2, tags: ['a', 'b'], outputs: [{ name: 'task_id', path: '/tmp/t' }] })
    expect(p.flags).toMatchObject({ METAFLOW_USER: undefined, METAFLOW_DEFAULT_DATASTORE: undefined })
  })

  it('keeps ids as strings even when they look like numbers', () => {
    const p = parseArgs(['step', 'start', '--code-url', 'file:///f.py', '--run-id', '123', '--task-id', '007'])
    if (p.kind !== 'run') throw new Error('not run')
    expect(p.config.runId).toBe('123')
  })

  it('takes the user from METAFLOW_USER but never root', () => {
    const get = (env: NodeJS.ProcessEnv) => {
      const p = parseArgs(['step', 'start', ...base])
      return p.kind === 'run' ? applySettings(p.config, resolveSettings(p.flags, env, '/nonexistent'), env).user : undefined
    }
    expect(get({ METAFLOW_USER: 'alice' })).toBe('alice')
    expect(get({ METAFLOW_USER: 'root' })).toBe('kfp-user')
  })

  it('takes the attempt from --retry-count, else KFP_RETRY_INDEX, else 0', () => {
    const attempt = (args: string[], env: NodeJS.ProcessEnv) => {
      const p = parseArgs(['step', 'start', ...base, ...args])
      if (p.kind !== 'run') throw new Error('not run')
      const cfg = applySettings(p.config, resolveSettings(p.flags, env, '/nonexistent'), env)
      return cfg.command === 'step' ? cfg.retryCount : undefined
    }
    expect(attempt([], {})).toBe(0)
    expect(attempt([], { KFP_RETRY_INDEX: '2' })).toBe(2)
    expect(attempt(['--retry-count', '1'], { KFP_RETRY_INDEX: '2' })).toBe(1)
    expect(() => attempt([], { KFP_RETRY_INDEX: 'two' })).toThrow(/KFP_RETRY_INDEX/)
  })

  it('refuses a code URL that is not one, or of a scheme the agent does not fetch', () => {
    for (const url of ['not a url', 'gopher://example.com/flow.py']) {
      expect(() => parseArgs(['step', 'x', '--code-url', url, '--run-id', 'kfp-1'])).toThrow(/failed to accept --code-url/)
    }
  })

  it('takes seconds with fractions and turns them into milliseconds', () => {
    const p = parseArgs(['step', 'x', ...base, '--grace-period', '0.5', '--code-timeout', '86400'])
    if (p.kind !== 'run') throw new Error('not run')
    expect(p.config.graceMs).toBe(500)
    expect(p.config.code.timeoutMs).toBe(86_400_000)
  })

  it("takes @project's --branch and --production for step and init, and refuses a branch name @project refuses", () => {
    const cfg = parseArgs(['step', 'start', ...base, '--branch', 'feature_x', '--production'])
    expect(cfg.kind === 'run' && [cfg.config.branch, cfg.config.production]).toEqual(['feature_x', true])
    const init = parseArgs(['init', ...base])
    expect(init.kind === 'run' && [init.config.branch, init.config.production]).toEqual([undefined, false])
    expect(() => parseArgs(['init', ...base, '--branch', 'Feature-X'])).toThrow(/failed to accept --branch "Feature-X": Metaflow's @project takes lowercase letters, digits and underscores/)
    expect(() => parseArgs(['step', 'start', ...base, '--production=yes'])).toThrow(/--production=yes: expected true or false/)
  })

  it('reads flow parameters as NAME=VALUE and as JSON', () => {
    const p = parseArgs(['init', ...base, '--param', 'a=1=2', '--params-json', '{"b": [1, 2], "c": "x"}'])
    if (p.kind !== 'run') throw new Error('not run')
    expect(p.config.params).toEqual({ a: '1=2', b: '[1,2]', c: 'x' })
  })

  for (const [why, args] of [
    ['an unknown output name', ['--output', 'nope=/tmp/x']],
    ['a malformed --param', ['--param', 'novalue']],
    ['--params-json that is not an object', ['--params-json', '[1]']],
    ['a negative split index', ['--split-index', '-1']],
    ['a split path with words', ['--split-path', '1,a']],
    ['--grace-period past a day, which overflowed Node\'s timer', ['--grace-period', '3000000']],
    ['--code-timeout Infinity', ['--code-timeout', 'Infinity']],
    ['--code-timeout 0', ['--code-timeout', '0']],
    ['--code-max-bytes 1e20', ['--code-max-bytes', '1e20']],
    ['--num-splits 0, which crashed Metaflow', ['--join-foreach', 'a', '--num-splits', '0']],
    ['--num-splits that is not a number', ['--join-foreach', 'a', '--num-splits', 'four']],
    ['--retry-count 6, past Metaflow\'s attempts', ['--retry-count', '6']],
    ['--run-id given twice', ['--run-id', 'kfp-2']],
    ['an empty --tag', ['--tag', '']],
    ['a --tag longer than Metaflow takes', ['--tag', 'x'.repeat(501)]],
    ['one parameter under two spellings', ['--param', 'a-b=1', '--param', 'A_B=2']],
    ['an empty value, which yargs read as 0 or not given', ['--grace-period=']],
    ['an empty --user', ['--user', '']],
    ['a boolean that is neither true nor false, which yargs took as true', ['--allow-insecure-http=maybe']],
    ['a --code-sha256 that is not 64 hex digits', ['--code-sha256', 'abc']],
    ['a --flow-file that leaves the package', ['--flow-file', '../flow.py']],
  ] as const) {
    it(`refuses ${why} as a usage error`, () => {
      let err: unknown
      try {
        parseArgs(['step', 'x', ...base, ...args])
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(AgentError)
      expect((err as AgentError).exitCode).toBe(64)
    })
  }
})
