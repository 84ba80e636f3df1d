// Unpacks a .tar.gz code package into a fresh folder, refusing anything that could leave it or exhaust the pod.
import { createReadStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { isAbsolute, posix } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory'])

export interface ExtractLimits {
  /** bytes of the inflated tar stream, headers and padding included */
  maxBytes: number
  maxEntries: number
  /** ends the unpacking (the code deadline, or the task being stopped) */
  signal?: AbortSignal | undefined
}

/** A package refused for what it holds: an unsafe entry or a limit exceeded; never retried. */
export class PackageRefusedError extends Error {}

/** Why an archive entry is refused, or undefined when it is safe to write. */
export function unsafeEntryReason(path: string, type: string): string | undefined {
  if (!ALLOWED_TYPES.has(type)) return `${path} is a ${type}; only files and folders are allowed`
  if (isAbsolute(path) || /^[A-Za-z]:/.test(path) || path.startsWith('\\')) return `${path} is an absolute path`
  if (path.split(/[\\/]/).includes('..')) return `${path} contains ".."`
  if (posix.normalize(path).startsWith('../')) return `${path} leaves the package folder`
  return undefined
}

/**
 * Extracts every entry or none. A first pass only reads the headers (nothing touches the
 * disk): an unsafe entry, more than `maxEntries` entries or `maxBytes` of inflated stream is
 * refused before a single file exists, so a package of 150,000 empty files costs a second,
 * not the creation of 100,000 files. The second pass writes; `dest` must be a fresh, private
 * folder the caller made, and it is removed when anything fails or the signal aborts.
 *
 * Why the inflating is ours and not tar's: tar's parser appends every chunk that arrives
 * after the end-of-archive blocks to one growing buffer (a Buffer.concat per chunk), so a
 * small .tar.gz of zeros took time quadratic in its inflated size. Here the inflated bytes
 * pass a gate that counts them against `maxBytes` and drops what follows the archive's end,
 * so the work is linear and bounded, and the signal can stop it at any chunk.
 */
export async function extractPackage(archive: string, dest: string, limits: ExtractLimits): Promise<void> {
  // Loaded on demand: most steps fetch a single .py file and never need tar.
  const tar = await import('tar')
  const common = { strict: true, zstd: false, brotli: false } as const
  try {
    // the first pass reads each entry's body only to skip it
    await readThrough(archive, limits, (filter) => new tar.Parser({ ...common, filter, onReadEntry: (entry) => entry.resume() }))
    await readThrough(archive, limits, (filter) => new tar.Unpack({ ...common, cwd: dest, preserveOwner: false, filter }))
  } catch (err) {
    await rm(dest, { recursive: true, force: true })
    if (limits.signal?.aborted) throw limits.signal.reason
    throw err
  }
}

type EntryFilter = (path: string, entry: { type?: string; size?: number } | object) => boolean
type TarSink = NodeJS.WritableStream & { on(event: 'eof', listener: () => void): unknown }

/** Streams the archive through gunzip and the gate into a tar parser or unpacker made by `sink`. */
async function readThrough(archive: string, limits: ExtractLimits, sink: (filter: EntryFilter) => unknown): Promise<void> {
  const problems: string[] = []
  let entries = 0
  let declared = 0
  // tar calls filter before it writes anything of the entry; it must not throw, so problems are collected.
  const filter: EntryFilter = (path, entry) => {
    const type = 'type' in entry && entry.type ? entry.type : 'File'
    const reason = unsafeEntryReason(path, type)
    if (reason) problems.push(`unsafe package entry: ${reason}`)
    declared += 'size' in entry ? Number(entry.size) : 0
    entries += 1
    if (declared > limits.maxBytes) problems.push(`the package unpacks to more than ${limits.maxBytes} bytes`)
    if (entries > limits.maxEntries) problems.push(`the package has more than ${limits.maxEntries} entries`)
    return problems.length === 0
  }
  const tarSink = sink(filter) as TarSink
  let ended = false
  tarSink.on('eof', () => {
    ended = true
  })
  let inflated = 0
  const gate = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (inflated === 0 && chunk[0] === 0x1f && chunk[1] === 0x8b) {
        return done(new PackageRefusedError('the package is compressed twice (a .tar.gz inside the .gz)'))
      }
      inflated += chunk.length
      if (inflated > limits.maxBytes) return done(new PackageRefusedError(`the package unpacks to more than ${limits.maxBytes} bytes`))
      if (problems.length > 0) return done(new PackageRefusedError(problems[0]))
      // after the end-of-archive blocks tar only buffers; trailing bytes are counted, not kept
      done(null, ended ? undefined : chunk)
    },
  })
  try {
    await pipeline(createReadStream(archive), createGunzip(), gate, tarSink, limits.signal ? { signal: limits.signal } : {})
  } catch (err) {
    if (err instanceof PackageRefusedError || limits.signal?.aborted) throw err
    if (problems.length > 0) throw new PackageRefusedError(problems[0])
    throw new Error(`not a valid .tar.gz package`, { cause: err })
  }
  if (problems.length > 0) throw new PackageRefusedError(problems[0])
}
