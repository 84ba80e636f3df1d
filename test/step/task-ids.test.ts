import { describe, expect, it } from 'vitest'
import { RESOLVE_CONCURRENCY, badIdReason, badIdentifierReason, badInputPathsReason, badStepNameReason, inputPathsFor, inputPathsText, isFixedPlacement, isStartPlacement, positionOf, resolveInputPaths, taskIdFor } from '../../agent/step/task-ids'
import type { TaskOutcome } from '../../agent/step/task-ids'

const base = { runId: 'kfp-r', splitPath: [], parents: [] as string[] }

describe('task ids', () => {
  it('are the step name outside any foreach and carry the position inside one', () => {
    expect(taskIdFor('start', [])).toBe('start')
    expect(taskIdFor('explore', [2])).toBe('explore-2')
    expect(taskIdFor('inner', [1, 0])).toBe('inner-1-0')
  })

  it('are never numeric and never hold a character Metaflow forbids', () => {
    for (const id of [taskIdFor('a', [0]), taskIdFor('step_2', [10, 3])]) expect(badIdReason(id)).toBeUndefined()
    expect(badIdReason('123')).toMatch(/numeric/)
    expect(badIdReason('a/b')).toMatch(/forbid|contains/)
    expect(badIdReason('a:b')).toBeDefined()
    expect(badIdReason('')).toBeDefined()
  })

  it('refuse what would leave or hide in the datastore folder, and KFP placeholders left unresolved', () => {
    expect(badIdReason('..')).toMatch(/names a folder/)
    expect(badIdReason('.')).toMatch(/names a folder/)
    expect(badIdReason('.x')).toMatch(/starts with a dot/)
    expect(badIdReason('kfp-{{$.pipeline_job_uuid}}')).toMatch(/KFP 2\.4 and older/)
    expect(badIdReason('a b')).toMatch(/characters other than/)
    expect(badIdReason('a\\b')).toMatch(/characters other than/)
    expect(badIdReason('x'.repeat(256))).toMatch(/255 bytes/)
    expect(badIdReason('kfp-3f2a.b_c')).toBeUndefined()
    expect(badIdReason('kfp-é')).toBeUndefined()
  })

  it('take step and flow names that are Python identifiers, Unicode ones included, and keep _parameters for Metaflow', () => {
    for (const ok of ['start', '_private', 'étape', 'Step2']) expect(badStepNameReason(ok)).toBeUndefined()
    for (const bad of ['', '2nd', 'a-b', '../x', 'a.b', 'a b']) expect(badStepNameReason(bad)).toBeDefined()
    expect(badStepNameReason('_parameters')).toMatch(/reserves/)
    expect(badIdentifierReason('HelloFlow')).toBeUndefined()
  })

  it('read given input paths only when each is RUN/STEP/TASK inside the datastore', () => {
    expect(badInputPathsReason(['kfp-r/start/start', '1/_parameters/2'])).toBeUndefined()
    expect(badInputPathsReason(['kfp-r/../start'])).toMatch(/unsafe/)
    expect(badInputPathsReason(['kfp-r/start'])).toMatch(/not RUN\/STEP\/TASK/)
    expect(badInputPathsReason([])).toBeDefined()
  })

  it('put the split index after the split path', () => {
    expect(positionOf({ splitPath: [1], splitIndex: 3 })).toEqual([1, 3])
    expect(positionOf({ splitPath: [1, 3] })).toEqual([1, 3])
  })
})

describe('input paths', () => {
  it('point the start step at the parameters task', () => {
    const p = { ...base, step: 'start' }
    expect(isStartPlacement(p)).toBe(true)
    expect(inputPathsFor(p)).toEqual(['kfp-r/_parameters/params'])
  })

  it('point the first step of a foreach at the foreach task one level up', () => {
    expect(inputPathsFor({ ...base, step: 'explore', parents: ['start'], splitIndex: 2 })).toEqual(['kfp-r/start/start'])
    expect(inputPathsFor({ ...base, step: 'inner', parents: ['outer'], splitPath: [1], splitIndex: 0 })).toEqual(['kfp-r/outer/outer-1'])
  })

  it('keep later steps of a foreach body at their own position', () => {
    expect(inputPathsFor({ ...base, step: 'b', parents: ['a'], splitPath: [3] })).toEqual(['kfp-r/a/a-3'])
  })

  it('name every branch of a static join', () => {
    expect(inputPathsText({ ...base, step: 'join', parents: ['left', 'right'] })).toBe('kfp-r/:left/left,right/right')
  })

  it('name all N splits of a foreach join from the split count alone', () => {
    const p = { ...base, step: 'join', joinForeach: { steps: ['explore'], numSplits: 3 } }
    expect(isStartPlacement(p)).toBe(false)
    expect(inputPathsText(p)).toBe('kfp-r/explore/:explore-0,explore-1,explore-2')
    const nested = { ...base, step: 'inner_join', splitPath: [1], joinForeach: { steps: ['inner'], numSplits: 2 } }
    expect(inputPathsFor(nested)).toEqual(['kfp-r/inner/inner-1-0', 'kfp-r/inner/inner-1-1'])
  })
})

/** A datastore stand-in for resolveInputPaths: the outcome of each `step/task`, 'absent' unless listed; records every question. */
function outcomes(known: Record<string, TaskOutcome>) {
  const asked: string[] = []
  const ask = async (step: string, taskId: string): Promise<TaskOutcome> => {
    asked.push(`${step}/${taskId}`)
    return known[`${step}/${taskId}`] ?? 'absent'
  }
  return { ask, asked }
}

describe('input paths with candidate parents', () => {
  it('take from a --parent-any group the one candidate that finished, beside the fixed parents', async () => {
    const p = { ...base, step: 'join', parents: ['right'], parentAny: [['l1', 'l2']] }
    expect(isStartPlacement(p)).toBe(false)
    expect(isFixedPlacement(p)).toBe(false)
    const o = outcomes({ 'l2/l2': 'ok', 'l1/l1': 'absent' })
    expect(await resolveInputPaths(p, o.ask)).toEqual(['kfp-r/right/right', 'kfp-r/l2/l2'])
    expect(o.asked.sort()).toEqual(['l1/l1', 'l2/l2'])
  })

  it('look for the candidates at the position of the parents, inside a foreach too', async () => {
    const later = { ...base, step: 'after', splitPath: [1, 4], parentAny: [['a', 'b']] }
    expect(await resolveInputPaths(later, outcomes({ 'b/b-1-4': 'ok' }).ask)).toEqual(['kfp-r/b/b-1-4'])
    // The first step inside a foreach: its candidate parents sit one level up, as --parent's do.
    const first = { ...base, step: 'body', splitPath: [1], splitIndex: 4, parentAny: [['a', 'b']] }
    expect(await resolveInputPaths(first, outcomes({ 'a/a-1': 'ok' }).ask)).toEqual(['kfp-r/a/a-1'])
  })

  it('resolve each --parent-any group on its own', async () => {
    const p = { ...base, step: 'join', parentAny: [['a', 'b'], ['c', 'd', 'e']] }
    expect(await resolveInputPaths(p, outcomes({ 'b/b': 'ok', 'e/e': 'ok', 'd/d': 'failed' }).ask)).toEqual(['kfp-r/b/b', 'kfp-r/e/e'])
  })

  it('take for each split of a --join-foreach of several steps whichever finished, in split order', async () => {
    const p = { ...base, step: 'join', splitPath: [2], joinForeach: { steps: ['even', 'odd'], numSplits: 4 } }
    const o = outcomes({ 'odd/odd-2-0': 'ok', 'even/even-2-1': 'ok', 'even/even-2-2': 'ok', 'odd/odd-2-3': 'ok', 'odd/odd-2-1': 'failed' })
    expect(await resolveInputPaths(p, o.ask)).toEqual(['kfp-r/odd/odd-2-0', 'kfp-r/even/even-2-1', 'kfp-r/even/even-2-2', 'kfp-r/odd/odd-2-3'])
  })

  it('ask the datastore nothing when the parents follow from the flags', async () => {
    const o = outcomes({})
    const p = { ...base, step: 'join', joinForeach: { steps: ['explore'], numSplits: 2 } }
    expect(isFixedPlacement(p)).toBe(true)
    expect(await resolveInputPaths(p, o.ask)).toEqual(['kfp-r/explore/explore-0', 'kfp-r/explore/explore-1'])
    expect(o.asked).toEqual([])
  })

  it('refuse a group of which none finished, saying what became of each candidate', async () => {
    const p = { ...base, step: 'after', parentAny: [['a', 'b']] }
    await expect(resolveInputPaths(p, outcomes({ 'a/a': 'failed' }).ask)).rejects.toMatchObject({
      kind: 'usage',
      message: 'failed to find the parents of kfp-r/after: of --parent-any a,b, none finished: kfp-r/a/a did not succeed, kfp-r/b/b never ran',
    })
  })

  it('pass over a candidate that finished but went on to another step, as a switch that skipped ahead did', async () => {
    const p = { ...base, step: 'end', parentAny: [['work', 'start']] }
    expect(await resolveInputPaths(p, outcomes({ 'work/work': 'ok', 'start/start': 'elsewhere' }).ask)).toEqual(['kfp-r/work/work'])
    await expect(resolveInputPaths(p, outcomes({ 'start/start': 'elsewhere' }).ask)).rejects.toThrow(
      'failed to find the parents of kfp-r/end: of --parent-any work,start, none finished: kfp-r/work/work never ran, kfp-r/start/start went on to another step',
    )
  })

  it('refuse a group of which two finished, since a switch takes one case', async () => {
    const p = { ...base, step: 'after', parentAny: [['a', 'b']] }
    await expect(resolveInputPaths(p, outcomes({ 'a/a': 'ok', 'b/b': 'ok' }).ask)).rejects.toMatchObject({
      kind: 'usage',
      message: 'failed to find the parents of kfp-r/after: of --parent-any a,b, exactly one may have finished, but kfp-r/a/a and kfp-r/b/b did',
    })
  })

  it('name the first split of a wide join that has no finished candidate, and count the others, in one line', async () => {
    const known: Record<string, TaskOutcome> = {}
    for (let i = 0; i < 1000; i++) if (i !== 7 && i !== 500 && i !== 999) known[`a/a-${i}`] = 'ok'
    const p = { ...base, step: 'join', joinForeach: { steps: ['a', 'b'], numSplits: 1000 } }
    await expect(resolveInputPaths(p, outcomes(known).ask)).rejects.toThrow(/^failed to find the parents of kfp-r\/join: of --join-foreach a,b, none finished at split 7: kfp-r\/a\/a-7 never ran, kfp-r\/b\/b-7 never ran \(and at 2 more splits\)$/)
  })

  it(`ask about at most ${RESOLVE_CONCURRENCY} candidate positions at once, so a join of 100,000 splits does not open every read together`, async () => {
    let inFlight = 0
    let most = 0
    const ask = async (step: string): Promise<TaskOutcome> => {
      inFlight++
      most = Math.max(most, inFlight)
      await new Promise((r) => setTimeout(r, 1))
      inFlight--
      return step === 'a' ? 'ok' : 'absent'
    }
    const paths = await resolveInputPaths({ ...base, step: 'join', joinForeach: { steps: ['a', 'b'], numSplits: 500 } }, ask)
    expect(paths).toHaveLength(500)
    expect(most).toBeLessThanOrEqual(RESOLVE_CONCURRENCY * 2)
    expect(most).toBeGreaterThan(1)
  })
})
