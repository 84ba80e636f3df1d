// The generate corpus (test/fixtures/flows/generate): flows whose generated pipelines are run and judged against `python flow.py run`.
import { join } from 'node:path'
import { FIXTURE_FLOWS } from './paths'

export const CORPUS = join(FIXTURE_FLOWS, 'generate')

/** Each corpus flow that runs end to end: its file, its FlowSpec's name, and how many tasks each step has in a run. */
export const CASES = [
  { flow: 'linear_flow', name: 'LinearFlow', tasks: { start: 1, middle: 1, risky: 1, end: 1 } },
  { flow: 'config_flow', name: 'ConfigFlow', tasks: { start: 1, end: 1 } },
  { flow: 'nested_branch_flow', name: 'NestedBranchFlow', tasks: { start: 1, a: 1, a1: 1, a2: 1, a_join: 1, b: 1, join: 1, end: 1 } },
  { flow: 'foreach_in_branch_flow', name: 'ForeachInBranchFlow', tasks: { start: 1, fan: 1, each: 3, fan_join: 1, side: 1, join: 1, end: 1 } },
  { flow: 'branch_in_foreach_flow', name: 'BranchInForeachFlow', tasks: { start: 1, outer: 2, left: 2, right: 2, both: 2, fan: 2, part: 3, part_join: 2, after: 2, outer_join: 1, end: 1 } },
  { flow: 'triple_foreach_flow', name: 'TripleForeachFlow', tasks: { start: 1, split_x: 2, split_y: 4, split_z: 8, inner: 8, join_z: 4, join_y: 2, join_x: 1, end: 1 } },
  { flow: 'custom_start_end_flow', name: 'CustomStartEndFlow', tasks: { begin: 1, middle: 1, finish: 1 } },
  // Switches: only the cases taken have tasks.
  { flow: 'switch_flow', name: 'SwitchFlow', tasks: { start: 1, b: 1, end: 1 } },
  { flow: 'switch_after_switch_flow', name: 'SwitchAfterSwitchFlow', tasks: { start: 1, x: 1, second: 1, q: 1, end: 1 } },
  { flow: 'branch_in_case_flow', name: 'BranchInCaseFlow', tasks: { start: 1, fan: 1, left: 1, right: 1, both: 1, after: 1, end: 1 } },
  { flow: 'foreach_in_case_flow', name: 'ForeachInCaseFlow', tasks: { start: 1, each: 1, item: 3, each_join: 1, done: 1, end: 1 } },
  { flow: 'switch_in_foreach_flow', name: 'SwitchInForeachFlow', tasks: { start: 1, route: 3, odd: 2, even: 1, settle: 3, nums_join: 1, fan: 1, pick: 2, big: 1, small: 1, sizes_join: 1, end: 1 } },
  { flow: 'nested_switch_flow', name: 'NestedSwitchFlow', tasks: { start: 1, inner: 1, q: 1, inner_done: 1, done: 1, end: 1 } },
  { flow: 'include_file_flow', name: 'IncludeFileFlow', tasks: { start: 1, end: 1 } },
  { flow: 'project_flow', name: 'ProjectFlow', tasks: { start: 1, end: 1 } },
  { flow: 'card_flow', name: 'CardsFlow', tasks: { start: 1, each: 2, join: 1, end: 1 } },
] as const

/**
 * Options some corpus flows run with: `generate` gets `generate`, and the plain run it is judged
 * against gets `topLevel` before `run` (@project's branch: without one, each side would be the
 * branch of its own user).
 */
export const RUN_OPTIONS: Record<string, { generate: string[]; topLevel: string[] } | undefined> = {
  project_flow: { generate: ['--branch', 'kfp_test'], topLevel: ['--branch', 'kfp_test'] },
}
