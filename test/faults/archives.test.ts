// Hostile .tar.gz code packages: traversal, absolute paths, links out, device files, bombs by bytes and by entry count.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { constants, gzipSync } from 'node:zlib'
import { Header } from 'tar'
import { describe, expect, it } from 'vitest'
import { agentEnv } from '../helpers/agent-process'
import { PYTHON } from '../helpers/paths'
import { STAGE_FLOW, expectNoOutputs, expectOneError, filesUnder, runBounded, shown, useCaseDirs } from './fault-kit'

const caseDir = useCaseDirs('mfkfp-archive-')
const FLOW = readFileSync(STAGE_FLOW, 'utf8')

type EntryType = 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice' | 'BlockDevice'
interface Entry {
  path: string
  type?: EntryType
  body?: string | Buffer
  linkpath?: string
}

/** Tar headers written one by one, so entries no honest tool would write can be made. */
function tarBlocks(entries: Iterable<Entry>): Buffer[] {
  const blocks: Buffer[] = []
  for (const e of entries) {
    const body = typeof e.body === 'string' ? Buffer.from(e.body) : (e.body ?? Buffer.alloc(0))
    const type = e.type ?? 'File'
    const header = Buffer.alloc(512)
    new Header({ path: e.path, type, size: type === 'File' ? body.length : 0, mode: type === 'Directory' ? 0o755 : 0o644, mtime: new Date(0), linkpath: e.linkpath, devmaj: 1, devmin: 3 } as never).encode(header, 0)
    blocks.push(header)
    if (type === 'File' && body.length) blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  return blocks
}

const tgz = (entries: Iterable<Entry>) => gzipSync(Buffer.concat(tarBlocks(entries)), { level: constants.Z_BEST_COMPRESSION })

/** Runs `step start` on the package with its own TMPDIR; returns the run and where to look for escapes. */
async function runPackage(pkg: Buffer, extra: string[] = [], boundMs = 60_000) {
  const dir = caseDir()
  const tmp = join(dir, 'tmp')
  mkdirSync(tmp)
  const file = join(dir, 'pkg.tar.gz')
  writeFileSync(file, pkg)
  const out = join(dir, 'outputs')
  const r = await runBounded([
    'step', 'start', '--code-url', `file://${file}`, '--python', PYTHON, '--run-id', 'kfp-archive',
    '--datastore-root', join(dir, 'datastore', '.metaflow'), '--output-dir', out, ...extra,
  ], { env: agentEnv({ HOME: dir }), tmp, boundMs, cwd: dir })
  expect(r.timedOut, shown(r)).toBe(false)
  return { r, dir, tmp, out }
}

/** Exit 65, one line, no outputs, the work dir gone, and nothing written outside it. */
function expectRefusedPackage(c: Awaited<ReturnType<typeof runPackage>>, reason?: RegExp): void {
  expectOneError(c.r, 65, reason)
  expectNoOutputs(c.out)
  expect(filesUnder(c.tmp)).toEqual([])
  expect(filesUnder(c.dir).filter((f) => /escaped|pwned/.test(f))).toEqual([])
  expect(c.r.stdout).not.toContain('STEP-STARTED')
}

const flowEntry: Entry = { path: 'stage_flow.py', body: FLOW }

describe('a package of plain files and folders', () => {
  it('is unpacked and runs (the control case the attacks below differ from)', async () => {
    const c = await runPackage(tgz([{ path: 'lib/', type: 'Directory' }, { path: 'lib/util.py', body: 'X = 1\n' }, flowEntry]))
    expect(c.r.code, shown(c.r)).toBe(0)
    expect(c.r.stdout).toContain('STEP-STARTED')
    expect(filesUnder(c.tmp)).toEqual([])
  })
})

describe('a package that tries to write outside its folder', () => {
  const attacks: [string, Entry[]][] = [
    ['a ../ path', [flowEntry, { path: '../../../escaped.py', body: 'x' }]],
    ['a ../ path hidden in the middle', [flowEntry, { path: 'lib/../../../../escaped.py', body: 'x' }]],
    ['an absolute path', [flowEntry, { path: '/tmp/escaped-by-mfkfp-test.py', body: 'x' }]],
    ['a symlink to a folder outside, then a file through it', [flowEntry, { path: 'out', type: 'SymbolicLink', linkpath: '../../..' }, { path: 'out/escaped.py', body: 'x' }]],
    ['a symlink to an absolute path', [flowEntry, { path: 'passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' }]],
    ['a hard link to a file outside', [flowEntry, { path: 'pwned', type: 'Link', linkpath: '/etc/passwd' }]],
    ['a hard link through ..', [flowEntry, { path: 'pwned', type: 'Link', linkpath: '../../../pkg.tar.gz' }]],
  ]
  for (const [what, entries] of attacks) {
    it(`with ${what} is refused with exit 65 before anything runs`, async () => {
      expectRefusedPackage(await runPackage(tgz(entries)))
      expect(existsSync('/tmp/escaped-by-mfkfp-test.py')).toBe(false)
    })
  }
})

describe('a package with special files', () => {
  for (const type of ['FIFO', 'CharacterDevice', 'BlockDevice'] as const) {
    it(`holding a ${type} is refused with exit 65`, async () => {
      expectRefusedPackage(await runPackage(tgz([flowEntry, { path: 'dev', type }])))
    })
  }
})

describe('a package bomb', () => {
  it('of 100 MiB of zeros in a ~100 KB download is refused with exit 65 in seconds, over the unpacked-bytes limit', async () => {
    const pkg = tgz([flowEntry, { path: 'zeros.bin', body: Buffer.alloc(100 << 20) }])
    expect(pkg.length).toBeLessThan(200_000)
    const c = await runPackage(pkg, ['--code-max-bytes', String(1 << 20)], 60_000)
    expectRefusedPackage(c, /unpack/)
    expect(c.r.ms).toBeLessThan(20_000)
  }, 120_000)

  it('of 150,000 empty files is refused with exit 65 in seconds, over the entry limit', async () => {
    const c = await runPackage(manyEmptyFiles(150_000), [], 120_000)
    expectRefusedPackage(c, /unpack/)
    expect(c.r.ms).toBeLessThan(30_000)
  }, 200_000)
})

/**
 * A .tar.gz of the flow and `n` empty files f0, f1, …: one header made by tar, copied with a new
 * name and checksum per entry, because making 150,000 headers one by one takes seconds.
 */
function manyEmptyFiles(n: number): Buffer {
  const [flowHeader, ...rest] = tarBlocks([flowEntry])
  const flowBody = rest.slice(0, -1)
  const template = Buffer.alloc(512)
  new Header({ path: 'f', type: 'File', size: 0, mode: 0o644, mtime: new Date(0) }).encode(template, 0)
  const headers = Buffer.alloc(512 * n)
  for (let i = 0; i < n; i++) {
    const h = headers.subarray(512 * i, 512 * (i + 1))
    template.copy(h)
    h.fill(0, 0, 100)
    h.write(`f${i}`, 0, 'ascii')
    // The checksum: the header's byte sum with its own 8-byte field counted as spaces, in octal.
    h.fill(0x20, 148, 156)
    let sum = 0
    for (let b = 0; b < 512; b++) sum += h[b] as number
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii')
  }
  return gzipSync(Buffer.concat([flowHeader as Buffer, ...flowBody, headers, Buffer.alloc(1024)]), { level: 1 })
}
