import { describe, expect, it } from 'vitest'
import { RetryableError, parseRetryAfter, withRetry } from '../../agent/net/retry'

function clock() {
  let t = 0
  const waits: number[] = []
  return {
    now: () => t,
    sleep: async (ms: number) => {
      waits.push(ms)
      t += ms
    },
    waits,
  }
}

describe('withRetry', () => {
  it('retries retryable errors with growing, jittered waits until the action succeeds', async () => {
    const c = clock()
    let calls = 0
    const result = await withRetry(async () => {
      calls++
      if (calls < 4) throw new RetryableError('503')
      return 'ok'
    }, (e) => e instanceof RetryableError, { attempts: 6, minDelayMs: 100, maxDelayMs: 1000, deadline: 1e9, random: () => 1, ...c })
    expect(result).toBe('ok')
    expect(c.waits).toEqual([100, 200, 400])
  })

  it('waits at least as long as the server asked with Retry-After', async () => {
    const c = clock()
    let calls = 0
    await withRetry(async () => {
      if (calls++ === 0) throw new RetryableError('429', { retryAfterMs: 700 })
    }, () => true, { attempts: 3, minDelayMs: 10, maxDelayMs: 5000, deadline: 1e9, random: () => 0, ...c })
    expect(c.waits).toEqual([700])
  })

  it('gives up at once on an error that is not retryable', async () => {
    const c = clock()
    await expect(withRetry(async () => { throw new Error('404') }, () => false, { attempts: 5, minDelayMs: 1, maxDelayMs: 1, deadline: 1e9, ...c })).rejects.toThrow('404')
    expect(c.waits).toEqual([])
  })

  it('stops when the next wait would pass the deadline and keeps the last error', async () => {
    const c = clock()
    let calls = 0
    await expect(withRetry(async () => {
      calls++
      throw new RetryableError(`fail ${calls}`)
    }, () => true, { attempts: 100, minDelayMs: 100, maxDelayMs: 100, deadline: 250, random: () => 1, ...c })).rejects.toThrow('fail 3')
  })
})

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('3', 0)).toBe(3000)
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000)
    expect(parseRetryAfter('soon', 0)).toBeUndefined()
    expect(parseRetryAfter(undefined, 0)).toBeUndefined()
  })
})
