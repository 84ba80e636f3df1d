// Which attempt a task runs as, judged on a real local datastore laid out the way Metaflow writes it.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LocalStore } from '../../agent/datastore/datastore'
import { latestAttempt, planAttempt } from '../../agent/step/attempts'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
const task = { flow: 'F', runId: 'kfp-r', step: 'start', taskId: 'start' }

/** A datastore holding attempt markers for the given attempts (and DONE locks for those marked done). */
function storeWith(attempts: number[], done: number[] = []): LocalStore {
  const root = tempDir()
  const dir = join(root, 'F', 'kfp-r', 'start', 'start')
  mkdirSync(dir, { recursive: true })
  for (const a of attempts) writeFileSync(join(dir, `${a}.attempt.json`), '{}')
  for (const a of done) writeFileSync(join(dir, `${a}.DONE.lock`), '')
  return new LocalStore(root)
}

describe('the latest attempt', () => {
  it("is found the way Metaflow's TaskDataStore finds it: the highest before the first gap after a marker", async () => {
    expect(await latestAttempt(storeWith([]), task)).toBeUndefined()
    expect(await latestAttempt(storeWith([0, 1]), task)).toBe(1)
    expect(await latestAttempt(storeWith([0, 2]), task)).toBe(0)
    expect(await latestAttempt(storeWith([2, 3]), task)).toBe(3)
  })
})

describe('planAttempt', () => {
  it('runs the attempt asked for when the task has none yet', async () => {
    expect(await planAttempt(storeWith([]), task, 0)).toEqual({ kind: 'run', attempt: 0 })
    expect(await planAttempt(storeWith([]), task, 2)).toEqual({ kind: 'run', attempt: 2 })
  })

  it('runs the next attempt after one that died before its DONE lock, whatever was asked for', async () => {
    expect(await planAttempt(storeWith([0]), task, 0)).toEqual({ kind: 'run', attempt: 1 })
    expect(await planAttempt(storeWith([0]), task, 4)).toEqual({ kind: 'run', attempt: 1 })
  })

  it('refuses to run past the attempts Metaflow allows', async () => {
    expect(await planAttempt(storeWith([0, 1, 2, 3, 4, 5]), task, 5)).toEqual({ kind: 'exhausted', latest: 5 })
  })
})
