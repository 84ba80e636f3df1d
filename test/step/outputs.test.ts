import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { outputValues, writeOutputs } from '../../agent/step/outputs'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()

describe('output values', () => {
  it('give a foreach step its split count and the list of indices', () => {
    expect(outputValues('start', 4)).toEqual({ task_id: 'start', split_count: '4', splits: '[0,1,2,3]' })
  })

  it('give a step that is not a foreach zero splits and an empty list', () => {
    expect(outputValues('end', null)).toEqual({ task_id: 'end', split_count: '0', splits: '[]' })
  })

  it('stay valid JSON for 100,000 splits', () => {
    const v = outputValues('start', 100_000)
    expect(JSON.parse(v.splits)).toHaveLength(100_000)
  })
})

describe('writing outputs', () => {
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
    expect(readdirSync(join(dir, 'out'))).toEqual([])
  })
})
