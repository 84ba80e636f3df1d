// The task's own stage times, one stderr line when METAFLOW_KFP_TIMINGS=1: what `make bench` breaks the step overhead into.
import { performance } from 'node:perf_hooks'

export interface StageTimes {
  /** times `work` as `stage` (start and end, so overlapping stages show as such) */
  time<T>(stage: string, work: Promise<T>): Promise<T>
  /** a stage timed elsewhere: its start (ms since the process started) and length */
  add(stage: string, startMs: number, ms: number): void
  /** a fact about this start, printed first as key=value (e.g. code-cache=used) */
  note(key: string, value: string): void
  /** `timings: node=41@0 load=14@41 fetch=3@57 …` (ms, @ start in ms since the process started), in order of start */
  line(): string
}

/** On when METAFLOW_KFP_TIMINGS is 1; undefined (and nothing is timed) otherwise. */
export function stageTimes(env: NodeJS.ProcessEnv, now: () => number = () => performance.now()): StageTimes | undefined {
  if (env.METAFLOW_KFP_TIMINGS !== '1') return undefined
  const stages: { stage: string; start: number; ms: number }[] = []
  const created = now()
  const boot = performance.nodeTiming.bootstrapComplete
  // Why these two: Node's own start ends at bootstrapComplete; from there to this call the
  // bundle is read, compiled and its top level run.
  if (boot > 0) {
    stages.push({ stage: 'node', start: 0, ms: boot })
    stages.push({ stage: 'load', start: boot, ms: created - boot })
  }
  const add = (stage: string, start: number, ms: number) => void stages.push({ stage, start, ms })
  const notes: string[] = []
  return {
    add,
    note: (key, value) => void notes.push(`${key}=${value}`),
    time(stage, work) {
      const start = now()
      const done = () => add(stage, start, now() - start)
      work.then(done, done)
      return work
    },
    line() {
      const end = now()
      const parts = [...stages].sort((a, b) => a.start - b.start).map((s) => `${s.stage}=${s.ms.toFixed(1)}@${s.start.toFixed(1)}`)
      return `timings: ${[...notes, ...parts].join(' ')} total=${end.toFixed(1)} ${memoryNotes()}`
    },
  }
}

/**
 * The agent's memory as it ends, in MB: the peak RSS (getrusage, what /usr/bin/time reports), and
 * V8's heap, committed and in use. Why both heap figures: a step that streams gigabytes leaves little
 * in use, while V8 keeps the young generation it grew for the stream committed.
 */
function memoryNotes(): string {
  const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1)
  const { heapTotal, heapUsed } = process.memoryUsage()
  return `peak-rss-mb=${mb(process.resourceUsage().maxRSS * 1024)} heap-mb=${mb(heapTotal)} heap-used-mb=${mb(heapUsed)}`
}

/** `work`, timed as `stage` when timings are on. */
export function staged<T>(times: StageTimes | undefined, stage: string, work: Promise<T>): Promise<T> {
  return times ? times.time(stage, work) : work
}
