// The task-record reader on records laid out as Metaflow lays them out (gzip'd pickles, content-addressed), including the switch a task took.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { LocalStore, readTaskRecord } from '../../agent/datastore/datastore'
import { PYTHON } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()

/** Writes one finished task of flow F, run r, step `step`, with these artifacts (Python expressions), as Metaflow's local datastore does. */
function task(root: string, step: string, artifacts: Record<string, string>): { flow: string; runId: string; step: string; taskId: string; attempt: number } {
  const objects: Record<string, string> = {}
  for (const [name, expr] of Object.entries(artifacts)) {
    const pickled = Buffer.from(execFileSync(PYTHON, ['-c', `import pickle,sys;sys.stdout.write(pickle.dumps(${expr}, protocol=4).hex())`], { encoding: 'utf8' }), 'hex')
    const sha = createHash('sha1').update(pickled).digest('hex')
    mkdirSync(join(root, 'F', 'data', sha.slice(0, 2)), { recursive: true })
    writeFileSync(join(root, 'F', 'data', sha.slice(0, 2), sha), gzipSync(pickled))
    objects[name] = sha
  }
  const dir = join(root, 'F', 'r', step, step)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, '0.data.json'), JSON.stringify({ objects }))
  writeFileSync(join(dir, '0.DONE.lock'), '')
  return { flow: 'F', runId: 'r', step, taskId: step, attempt: 0 }
}

const GRAPH = "{'start_step': 'begin', 'steps': {'begin': {'type': 'split-switch', 'next': ['a', 'b'], 'switch_cases': {'x': 'a', 'y': 'b'}}, 'a': {'type': 'linear', 'next': ['end']}}}"

describe('the task record', () => {
  it("names the case a switch step took, from the graph's step type and the task's _transition", async () => {
    const root = tempDir()
    const t = task(root, 'begin', { _task_ok: 'True', _graph_info: GRAPH, _transition: "(['b'], None)", _foreach_num_splits: 'None' })
    expect(await readTaskRecord(new LocalStore(root), t, { switchStep: true, next: true })).toEqual({ taskOk: true, numSplits: null, switchStep: 'b', next: ['b'] })
  })

  it('gives no case for a step that is not a switch, even one that goes on to a single step', async () => {
    const root = tempDir()
    const t = task(root, 'a', { _task_ok: 'True', _graph_info: GRAPH, _transition: "(['end'], None)" })
    expect((await readTaskRecord(new LocalStore(root), t, { switchStep: true })).switchStep).toBeNull()
  })

  it('gives no case for a record from a Metaflow without _graph_info, which predates switches', async () => {
    const root = tempDir()
    const t = task(root, 'begin', { _task_ok: 'True', _transition: "(['b'], None)" })
    expect((await readTaskRecord(new LocalStore(root), t, { switchStep: true })).switchStep).toBeNull()
  })

  it('reads neither the graph nor the transition unless asked', async () => {
    const root = tempDir()
    const t = task(root, 'begin', { _task_ok: 'True' })
    // Blobs that do not exist: reading either would fail.
    const missing = { _task_ok: '', _graph_info: '1'.repeat(40), _transition: '2'.repeat(40) }
    const dataJson = join(root, 'F', 'r', 'begin', 'begin', '0.data.json')
    missing._task_ok = (JSON.parse(readFileSync(dataJson, 'utf8')) as { objects: Record<string, string> }).objects._task_ok as string
    writeFileSync(dataJson, JSON.stringify({ objects: missing }))
    await expect(readTaskRecord(new LocalStore(root), t, { switchStep: true })).rejects.toThrow(/artifact _graph_info is missing/)
    expect(await readTaskRecord(new LocalStore(root), t)).toEqual({ taskOk: true, numSplits: null, switchStep: null, next: null })
  })

  it('refuses a switch that recorded a step outside its cases rather than report it', async () => {
    const root = tempDir()
    const t = task(root, 'begin', { _task_ok: 'True', _graph_info: GRAPH, _transition: "(['elsewhere'], None)" })
    await expect(readTaskRecord(new LocalStore(root), t, { switchStep: true })).rejects.toThrow(/switch step begin took elsewhere, which is none of its cases a, b/)
  })

  it('refuses a switch whose _transition names no single step', async () => {
    const root = tempDir()
    const t = task(root, 'begin', { _task_ok: 'True', _graph_info: GRAPH, _transition: "(['a', 'b'], None)" })
    await expect(readTaskRecord(new LocalStore(root), t, { switchStep: true })).rejects.toThrow(/recorded no single next step/)
  })
})
