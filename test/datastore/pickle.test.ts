import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { decodeScalarPickle } from '../../agent/datastore/pickle'
import { PYTHON } from '../helpers/paths'

function pickled(expr: string, protocol: number): Buffer {
  const out = execFileSync(PYTHON, ['-c', `import pickle,sys;sys.stdout.write(pickle.dumps(${expr}, protocol=${protocol}).hex())`], { encoding: 'utf8' })
  return Buffer.from(out, 'hex')
}

describe('the scalar pickle decoder', () => {
  const values = [0, 1, 4, 255, 256, 1000, 65535, 65536, 100000, 2 ** 31 - 1, 2 ** 31, 2 ** 40, -1, -300]
  for (const protocol of [2, 4, 5]) {
    it(`reads the ints Python pickles with protocol ${protocol}`, () => {
      for (const v of values) expect(decodeScalarPickle(pickled(String(v), protocol))).toBe(v)
    })
  }

  it('reads None, True and False', () => {
    expect(decodeScalarPickle(pickled('None', 4))).toBeNull()
    expect(decodeScalarPickle(pickled('True', 4))).toBe(true)
    expect(decodeScalarPickle(pickled('False', 4))).toBe(false)
  })

  it('refuses a pickle of anything else rather than misreading it', () => {
    expect(() => decodeScalarPickle(pickled('"4"', 4))).toThrow(/unsupported pickle opcode/)
    expect(() => decodeScalarPickle(pickled('[4]', 4))).toThrow(/unsupported/)
    expect(() => decodeScalarPickle(Buffer.from([0x80, 0x04, 0x4b]))).toThrow(/ends early/)
  })
})
