// run-local's condition languages: KFP trigger conditions (the CEL the kfp SDK writes), Argo's when and Argo's depends.
import { describe, expect, it } from 'vitest'
import { argoDepends, argoWhen, dependsTasks, kfpCondition } from '../../agent/local/conditions'
import type { ArgoTaskResult } from '../../agent/local/conditions'

const SW = "inputs.parameter_values['pipelinechannel--start-switch_step']"

describe('a KFP trigger condition', () => {
  it.each([
    [`${SW} == 'a'`, 'a', true],
    [`${SW} == 'a'`, 'b', false],
    [`!(${SW} == 'a')`, 'b', true],
    [`!(${SW} == 'a') && ${SW} == 'b'`, 'b', true],
    [`!(${SW} == 'a') && !(${SW} == 'b')`, 'c', true],
    [`!(${SW} == 'a') && !(${SW} == 'b')`, 'a', false],
    [`${SW} != 'a' || ${SW} == 'a'`, 'z', true],
  ])('%s is %s for %s, as the kfp SDK means dsl.If/Elif/Else', (text, value, want) => {
    expect(kfpCondition(text, { 'pipelinechannel--start-switch_step': value }, 'task t')).toBe(want)
  })

  it("compares numbers through int(), as the SDK writes a comparison of a number", () => {
    expect(kfpCondition("int(inputs.parameter_values['n']) > 2", { n: 3 }, 'task t')).toBe(true)
    expect(kfpCondition("int(inputs.parameter_values['n']) == 2", { n: '2' }, 'task t')).toBe(true)
  })

  it('refuses, in one line naming the task, an input the task does not have and CEL it does not evaluate', () => {
    expect(() => kfpCondition("inputs.parameter_values['x'] == 'a'", {}, 'task t')).toThrow(/^failed to run task t: its condition reads input x, which the task does not have$/)
    expect(() => kfpCondition("size(inputs.parameter_values['x']) == 1", { x: 'a' }, 'task t')).toThrow(/^failed to run task t: run-local does not evaluate "size"/)
    expect(() => kfpCondition(`${SW} == 'a'`.slice(0, -2), { 'pipelinechannel--start-switch_step': 'a' }, 'task t')).toThrow(/failed to run task t: run-local does not evaluate/)
    expect(() => kfpCondition(SW, { 'pipelinechannel--start-switch_step': 'a' }, 'task t')).toThrow(/it gives "a", not true or false/)
  })
})

describe("an Argo when, after its {{…}} were filled", () => {
  it.each([
    ["'odd' == 'odd'", true],
    ["'even' == 'odd'", false],
    ['heads == heads', true],
    ["'a' != 'b' && !('a' == 'b')", true],
  ])('%s is %s', (text, want) => {
    expect(argoWhen(text, 'task t')).toBe(want)
  })

  it('refuses an expr-language {{=…}} remainder by name', () => {
    expect(() => argoWhen("{{=tasks['a'].status}} == 'x'", 'task t')).toThrow(/^failed to run task t: run-local does not evaluate/)
  })
})

describe("an Argo depends", () => {
  const results = new Map<string, ArgoTaskResult>([['a', 'Succeeded'], ['b', 'Omitted'], ['c', 'Skipped']])

  it('names its tasks, whatever result each is tested for', () => {
    expect(dependsTasks('(a.Succeeded || b.Succeeded) && c && for-loop-x.Succeeded')).toEqual(['a', 'b', 'c', 'for-loop-x'])
  })

  it.each([
    ['a.Succeeded', true],
    ['b.Succeeded', false],
    ['(a.Succeeded || b.Succeeded)', true],
    ['(b.Succeeded || c.Succeeded)', false],
    ['a.Succeeded && b.Succeeded', false],
    // A bare name is Succeeded, Skipped or Daemoned, as Argo reads dependencies: [c].
    ['c', true],
    ['b', false],
    ['b.Omitted && c.Skipped', true],
  ])('%s is %s when a succeeded, b was omitted and c skipped', (text, want) => {
    expect(argoDepends(text, results, 'task t')).toBe(want)
  })
})
