import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { makeDirs } from '../../agent/make-dirs'
import { OUTPUT_NAMES, dirOutputNames, outputValues, wantsSwitchStep, writeOutputs } from '../../agent/step/outputs'
import { localClientEnv } from '../helpers/metaflow-client'
import { Orchestrator } from '../helpers/orchestrate'
import { PYTHON, FLOWS, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()

describe('output values', () => {
  it('give a foreach step its split count and the list of indices', () => {
    expect(outputValues('start', 4)).toEqual({ task_id: 'start', split_count: '4', splits: '[0,1,2,3]', switch_step: '' })
  })

  it('give a step that is not a foreach zero splits and an empty list', () => {
    expect(outputValues('end', null)).toEqual({ task_id: 'end', split_count: '0', splits: '[]', switch_step: '' })
  })

  it('give a switch step the step it took, and every other step the empty string', () => {
    expect(outputValues('start', null, 'case_b')).toEqual({ task_id: 'start', split_count: '0', splits: '[]', switch_step: 'case_b' })
    expect(outputValues('route-3', null, null).switch_step).toBe('')
  })

  it('stay valid JSON for 100,000 splits', () => {
    const v = outputValues('start', 100_000)
    expect(JSON.parse(v.splits)).toHaveLength(100_000)
  })
})

describe('writing outputs', () => {
  it('put switch_step in the output dir only for a switch step, so folders of pipelines without switches do not change', async () => {
    const dir = tempDir()
    expect(OUTPUT_NAMES).toContain('switch_step')
    expect(dirOutputNames(outputValues('a', null))).toEqual(['task_id', 'split_count', 'splits'])
    await writeOutputs(outputValues('start', null, 'big'), { dir: join(dir, 'switch'), paths: [] })
    expect(readdirSync(join(dir, 'switch')).sort()).toEqual(['split_count', 'splits', 'switch_step', 'task_id'])
    expect(readFileSync(join(dir, 'switch', 'switch_step'), 'utf8')).toBe('big')
    await writeOutputs(outputValues('big', null), { dir: join(dir, 'case'), paths: [{ name: 'switch_step', path: join(dir, 'kfp', 'switch_step') }] })
    expect(readdirSync(join(dir, 'case')).sort()).toEqual(['split_count', 'splits', 'task_id'])
    // Asked for by name, a step that is no switch still gets its (empty) value.
    expect(readFileSync(join(dir, 'kfp', 'switch_step'), 'utf8')).toBe('')
  })

  it('read the switch taken only when an output needs it', () => {
    expect(wantsSwitchStep({ paths: [{ name: 'task_id', path: '/x' }] })).toBe(false)
    expect(wantsSwitchStep({ paths: [{ name: 'switch_step', path: '/x' }] })).toBe(true)
    expect(wantsSwitchStep({ dir: '/out', paths: [] })).toBe(true)
  })

  it('writes one file per name in the output dir and each explicit path, without a trailing newline', async () => {
    const dir = tempDir()
    await writeOutputs(outputValues('explore-2', null), {
      dir: join(dir, 'out'),
      paths: [{ name: 'task_id', path: join(dir, 'kfp', 'outputs', 'task_id') }],
    })
    expect(readFileSync(join(dir, 'out', 'task_id'), 'utf8')).toBe('explore-2')
    expect(readFileSync(join(dir, 'out', 'split_count'), 'utf8')).toBe('0')
    expect(readFileSync(join(dir, 'out', 'splits'), 'utf8')).toBe('[]')
    expect(readFileSync(join(dir, 'kfp', 'outputs', 'task_id'), 'utf8')).toBe('explore-2')
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(['split_count', 'splits', 'task_id'])
  })

  it('leaves no output and no temp file when one of them cannot be written', async () => {
    const dir = tempDir()
    const locked = join(dir, 'locked')
    mkdirSync(locked)
    chmodSync(locked, 0o500)
    const isRoot = process.getuid?.() === 0
    // root ignores directory permissions, so point the second write at a path under a file instead.
    const bad = isRoot ? join(dir, 'out', 'task_id', 'nested') : join(locked, 'x')
    await expect(writeOutputs(outputValues('start', 2), { dir: join(dir, 'out'), paths: [{ name: 'splits', path: bad }] })).rejects.toThrow(/failed to write output/)
    expect(existsSync(join(dir, 'out', 'task_id'))).toBe(false)
    // The output folder it made is taken back too.
    expect(readdirSync(dir)).toEqual(['locked'])
  })
})

// Node 20's mkdir(..., {recursive: true}) retries forever when mkdir gives ENOENT under a parent that exists, as /proc does.
const UNCREATABLE = '/proc/metaflow-kfp-cannot-create/out'

describe('output folders that cannot be made', () => {
  it('makeDirs fails at once under /proc, where recursive mkdir spun forever', async () => {
    const started = Date.now()
    await expect(makeDirs(UNCREATABLE)).rejects.toMatchObject({ code: 'ENOENT' })
    expect(Date.now() - started).toBeLessThan(2000)
  }, 10_000)

  it('makeDirs refuses a path under a file and makes the missing folders of a good one', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'file'), '')
    await expect(makeDirs(join(dir, 'file', 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' })
    expect(await makeDirs(join(dir, 'a', 'b'))).toEqual([join(dir, 'a'), join(dir, 'a', 'b')])
    expect(await makeDirs(join(dir, 'a', 'b'))).toEqual([])
  })

  it('an --output-dir under /proc ends with an error instead of spinning forever', async () => {
    await expect(writeOutputs(outputValues('start', 1), { dir: UNCREATABLE, paths: [] })).rejects.toThrow(/failed to write output \/proc\//)
  }, 10_000)

  it('writes no output, not even its folder, when one explicit path cannot be written', async () => {
    const dir = tempDir()
    await expect(writeOutputs(outputValues('start', 2), {
      dir: join(dir, 'out'),
      paths: [{ name: 'task_id', path: join(dir, 'kfp', 'task_id') }, { name: 'splits', path: join(UNCREATABLE, 'splits') }],
    })).rejects.toThrow(/failed to write output/)
    expect(readdirSync(dir)).toEqual([])
  }, 10_000)

  it('takes back the outputs already renamed when a later rename fails', async () => {
    const dir = tempDir()
    // A folder where the last output's file should go: its temp file is written, its rename fails.
    mkdirSync(join(dir, 'kfp', 'splits'), { recursive: true })
    await expect(writeOutputs(outputValues('start', 2), {
      dir: join(dir, 'out'),
      paths: [{ name: 'splits', path: join(dir, 'kfp', 'splits') }],
    })).rejects.toThrow(/failed to write output .*splits/)
    expect(readdirSync(dir)).toEqual(['kfp'])
    expect(readdirSync(join(dir, 'kfp'))).toEqual(['splits'])
  })
})

describe('a step whose outputs cannot be written', () => {
  it('exits 74 with one line and still saves its logs when --output-dir is under /proc, where the agent spun forever', async () => {
    const dir = tempDir()
    const o = new Orchestrator(flowUrl('hello_flow.py'), 'kfp-outputs-proc', dir)
    await o.step('start')
    const r = await o.raw(['step', 'hello', '--parent', 'start', '--output-dir', UNCREATABLE])
    expect(r.code, r.stderr).toBe(74)
    const errors = r.stderr.split('\n').filter((l) => /error/i.test(l))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/^metaflow-kfp: error: failed to write the output parameters: .*\/proc\/metaflow-kfp-cannot-create.*\(check that the output paths are writable\)$/)
    // Metaflow's own CLI still finds what the step printed.
    const logs = execFileSync(PYTHON, [join(FLOWS, 'hello_flow.py'), 'logs', `${o.runId}/hello/hello`], {
      env: { ...localClientEnv(dir), METAFLOW_USER: 'test' },
      encoding: 'utf8',
    })
    expect(logs).toMatch(/Metaflow says hi from KFP/)
  }, 120_000)
})
