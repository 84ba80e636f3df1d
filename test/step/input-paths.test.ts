import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { compressInputPaths, decompressInputPaths } from '../../agent/step/input-paths'
import { PYTHON } from '../helpers/paths'

/** Metaflow's own decoder and encoder, so the TypeScript side is checked against the real thing. */
function metaflow(fn: 'decompress_list' | 'compress_list', arg: string | string[]): unknown {
  const script = `import json,sys\nfrom metaflow.util import ${fn}\nprint(json.dumps(${fn}(json.loads(sys.argv[1]))))`
  return JSON.parse(execFileSync(PYTHON, ['-c', script, JSON.stringify(arg)], { encoding: 'utf8' }))
}

describe('input paths text', () => {
  const wide = Array.from({ length: 300 }, (_, i) => `kfp-r/explore/explore-${i}`)

  it('is read by Metaflow exactly as we meant it', () => {
    for (const paths of [['r/start/start'], ['r/a/a', 'r/b/b'], wide]) {
      expect(metaflow('decompress_list', compressInputPaths(paths))).toEqual(paths)
    }
  })

  it("reads every form Metaflow's encoder writes, the zlib one included", () => {
    for (const paths of [['r/start/start'], ['r/a/x', 'r/b/y'], wide]) {
      const text = metaflow('compress_list', paths) as string
      expect(decompressInputPaths(text)).toEqual(paths)
    }
    expect((metaflow('compress_list', wide) as string).startsWith('!')).toBe(true)
  })
})
