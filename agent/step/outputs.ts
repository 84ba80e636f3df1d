// Writes the KFP output parameters (task_id, split_count, splits, switch_step) atomically, with no trailing newline.
import { randomBytes } from 'node:crypto'
import { renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { makeDirs, removeDirs } from '../make-dirs.js'

export const OUTPUT_NAMES = ['task_id', 'split_count', 'splits', 'switch_step'] as const
export type OutputName = (typeof OUTPUT_NAMES)[number]
export type OutputValues = Record<OutputName, string>

export interface OutputTargets {
  /** one file per output name in this folder (Argo valueFrom.path, KFP v1 file outputs) */
  dir?: string | undefined
  /** explicit paths (KFP v2 output_file placeholders) */
  paths: readonly { name: OutputName; path: string }[]
}

export function isOutputName(name: string): name is OutputName {
  return (OUTPUT_NAMES as readonly string[]).includes(name)
}

/**
 * What --output-dir writes: every output, but switch_step only for a switch step, so the
 * output folders of pipelines without switches stay as they were.
 */
export function dirOutputNames(values: OutputValues): OutputName[] {
  return OUTPUT_NAMES.filter((name) => name !== 'switch_step' || values.switch_step !== '')
}

/** True when an output of the switch taken is asked for, so the task's record must say it. */
export function wantsSwitchStep(targets: OutputTargets): boolean {
  return targets.dir !== undefined || targets.paths.some((t) => t.name === 'switch_step')
}

/**
 * The values a task hands downstream, from its id, its foreach split count and, for a switch
 * step, the step the switch took (the empty string for any other step: a switch never takes none).
 */
export function outputValues(taskId: string, numSplits: number | null, switchStep: string | null = null): OutputValues {
  const n = numSplits ?? 0
  // Built by hand so 100,000 splits do not allocate an array of numbers first.
  let splits = '['
  for (let i = 0; i < n; i++) splits += i === 0 ? `${i}` : `,${i}`
  splits += ']'
  return { task_id: taskId, split_count: String(n), splits, switch_step: switchStep ?? '' }
}

/**
 * Writes every requested output all-or-nothing, as far as a filesystem allows: first every
 * value goes to a temp file beside its target, and only when all of them exist are they
 * renamed into place. If any step fails, the temp files, the outputs already renamed and
 * the folders made for them are removed, so a reader sees all outputs or none.
 */
export async function writeOutputs(values: OutputValues, targets: OutputTargets): Promise<string[]> {
  const plan: { name: OutputName; path: string; tmp?: string }[] = [
    ...(targets.dir ? dirOutputNames(values).map((name) => ({ name, path: join(targets.dir as string, name) })) : []),
    ...targets.paths,
  ].map((t) => ({ ...t }))
  const madeDirs: string[] = []
  const renamed: string[] = []
  let current = ''
  try {
    for (const t of plan) {
      current = t.path
      madeDirs.push(...(await makeDirs(dirname(t.path))))
      t.tmp = join(dirname(t.path), `.${basename(t.path)}.${randomBytes(6).toString('hex')}.tmp`)
      // Synchronous, as makeDirs: a few small files, and the step's end waits for them.
      writeFileSync(t.tmp, values[t.name], { flag: 'wx' })
    }
    for (const t of plan) {
      current = t.path
      renameSync(t.tmp as string, t.path)
      renamed.push(t.path)
    }
  } catch (err) {
    for (const p of [...plan.map((t) => t.tmp), ...renamed]) {
      try {
        if (p) rmSync(p, { force: true })
      } catch {
        // best effort: the error below is what matters
      }
    }
    await removeDirs(madeDirs)
    throw new Error(`failed to write output ${current}`, { cause: err })
  }
  return renamed
}
