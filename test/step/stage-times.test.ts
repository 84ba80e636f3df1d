// The timings line (METAFLOW_KFP_TIMINGS=1) that `make bench` reads: stages in order of start, then the agent's memory as it ends.
import { describe, expect, it } from 'vitest'
import { stageTimes } from '../../agent/step/stage-times'

describe('stageTimes', () => {
  it('is off unless METAFLOW_KFP_TIMINGS is 1', () => {
    expect(stageTimes({})).toBeUndefined()
    expect(stageTimes({ METAFLOW_KFP_TIMINGS: 'yes' })).toBeUndefined()
  })

  it('prints notes first, then stages in order of start, then the total', async () => {
    let t = 100
    const times = stageTimes({ METAFLOW_KFP_TIMINGS: '1' }, () => t)
    if (!times) throw new Error('timings are on')
    times.note('code-cache', 'used')
    times.add('late', 50, 5)
    times.add('early', 10, 2.25)
    await times.time('fetch', Promise.resolve().then(() => void (t = 130)))
    t = 200
    const line = times.line()
    expect(line).toMatch(/^timings: code-cache=used /)
    // Node's own start and the bundle's load come first on a real clock; this one is fake, so only ours are checked.
    expect(line.replace(/ (node|load)=\S+/g, '')).toMatch(/^timings: code-cache=used early=2\.3@10\.0 late=5\.0@50\.0 fetch=30\.0@100\.0 total=200\.0 /)
  })

  it("ends with the agent's peak RSS and V8's heap, committed and in use, in MB", () => {
    const { rss } = process.memoryUsage()
    const times = stageTimes({ METAFLOW_KFP_TIMINGS: '1' })
    const m = /peak-rss-mb=([\d.]+) heap-mb=([\d.]+) heap-used-mb=([\d.]+)$/.exec(times?.line() ?? '')
    if (!m) throw new Error(`no memory figures in: ${times?.line()}`)
    const [peak, heap, used] = m.slice(1).map(Number) as [number, number, number]
    expect(peak).toBeGreaterThanOrEqual(Math.floor(rss / 2 ** 20) - 1)
    expect(used).toBeGreaterThan(0)
    expect(used).toBeLessThanOrEqual(heap)
    expect(heap).toBeLessThan(peak)
  })
})
