// Writes the KFP output parameters (task_id, split_count, splits) atomically, with no trailing newline.
import { randomBytes } from 'node:crypto'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export const OUTPUT_NAMES = ['task_id', 'split_count', 'splits'] as const
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

/** The values a task hands downstream, from its id and its foreach split count. */
export function outputValues(taskId: string, numSplits: number | null): OutputValues {
  const n = numSplits ?? 0
  // Built by hand so 100,000 splits do not allocate an array of numbers first.
  let splits = '['
  for (let i = 0; i < n; i++) splits += i === 0 ? `${i}` : `,${i}`
  splits += ']'
  return { task_id: taskId, split_count: String(n), splits }
}

/**
 * Writes every requested output, each through a temp file renamed into place. If any
 * write fails, the ones already written are removed, so a reader sees all or none.
 */
export async function writeOutputs(values: OutputValues, targets: OutputTargets): Promise<string[]> {
  const plan: { name: OutputName; path: string }[] = [
    ...(targets.dir ? OUTPUT_NAMES.map((name) => ({ name, path: join(targets.dir as string, name) })) : []),
    ...targets.paths,
  ]
  const written: string[] = []
  try {
    for (const { name, path } of plan) {
      await writeAtomically(path, values[name])
      written.push(path)
    }
  } catch (err) {
    await Promise.all(written.map((p) => rm(p, { force: true }).catch(() => undefined)))
    throw err
  }
  return written
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    await mkdir(dirname(path), { recursive: true })
    await writeFile(tmp, content, { flag: 'wx' })
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined)
    throw new Error(`failed to write output ${path}`, { cause: err })
  }
}
