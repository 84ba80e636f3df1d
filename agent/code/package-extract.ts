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
 * Extracts every entry or none: the first refused entry, a warning from tar, a limit
 * exceeded or an abort removes the whole folder and throws. `dest` must be a fresh, private
 * folder the caller made.
 *
 * Why the inflating is ours and not tar's: tar's parser appends every chunk that arrives
 * after the end-of-archive blocks to one growing buffer (a Buffer.concat per chunk), so a
 * small .tar.gz of zeros took time quadratic in its inflated size. Here the inflated bytes
 * pass a gate that counts them against `maxBytes` and drops what follows the archive's end,
 * so the work is linear and bounded, and the signal can stop it at any chunk.
 */
export async function extractPackage(archive: string, dest: string, limits: ExtractLimits): Promise<void> {
  const problems: string[] = []
  let entries = 0
  let declared = 0
  try {
    // Loaded on demand: most steps fetch a single .py file and never need tar.
    const tar = await import('tar')
    const unpack = new tar.Unpack({
      cwd: dest,
      strict: true,
      preserveOwner: false,
      // the gate below already inflated the gzip layer; nothing else may be inflated again
      zstd: false,
      brotli: false,
      // tar calls filter before writing; it must not throw, so problems are collected.
      filter: (path, entry) => {
        const type = 'type' in entry ? entry.type : 'File'
        const reason = unsafeEntryReason(path, type)
        if (reason) problems.push(`unsafe package entry: ${reason}`)
        declared += 'size' in entry ? Number(entry.size) : 0
        entries += 1
        if (declared > limits.maxBytes) problems.push(`the package unpacks to more than ${limits.maxBytes} bytes`)
        if (entries > limits.maxEntries) problems.push(`the package has more than ${limits.maxEntries} entries`)
        return problems.length === 0
      },
    })
    let ended = false
    unpack.on('eof', () => {
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
    await pipeline(createReadStream(archive), createGunzip(), gate, unpack, limits.signal ? { signal: limits.signal } : {})
  } catch (err) {
    await rm(dest, { recursive: true, force: true })
    if (limits.signal?.aborted) throw limits.signal.reason
    if (err instanceof PackageRefusedError) throw err
    if (problems.length > 0) throw new PackageRefusedError(problems[0])
    throw new Error(`not a valid .tar.gz package`, { cause: err })
  }
  if (problems.length > 0) {
    await rm(dest, { recursive: true, force: true })
    throw new PackageRefusedError(problems[0])
  }
}
