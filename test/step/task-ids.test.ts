import { describe, expect, it } from 'vitest'
import { badIdReason, badIdentifierReason, badInputPathsReason, badStepNameReason, inputPathsFor, inputPathsText, isStartPlacement, positionOf, taskIdFor } from '../../agent/step/task-ids'

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
