// Unpacks a .tar.gz code package into a fresh folder, refusing anything that could leave it.
import { rm } from 'node:fs/promises'
import { isAbsolute, posix } from 'node:path'

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory'])

export interface ExtractLimits {
  /** total unpacked bytes */
  maxBytes: number
  maxEntries: number
}

/** Why an archive entry is refused, or undefined when it is safe to write. */
export function unsafeEntryReason(path: string, type: string): string | undefined {
  if (!ALLOWED_TYPES.has(type)) return `${path} is a ${type}; only files and folders are allowed`
  if (isAbsolute(path) || /^[A-Za-z]:/.test(path) || path.startsWith('\\')) return `${path} is an absolute path`
  if (path.split(/[\\/]/).includes('..')) return `${path} contains ".."`
  if (posix.normalize(path).startsWith('../')) return `${path} leaves the package folder`
  return undefined
}

/**
 * Extracts every entry or none: the first refused entry, a warning from tar, or a limit
 * exceeded removes the whole folder and throws. `dest` must be a fresh, private folder.
 */
export async function extractPackage(archive: string, dest: string, limits: ExtractLimits): Promise<void> {
  const problems: string[] = []
  let bytes = 0
  let entries = 0
  try {
    // Loaded on demand: most steps fetch a single .py file and never need tar.
    const tar = await import('tar')
    await tar.x({
      file: archive,
      cwd: dest,
      strict: true,
      preserveOwner: false,
      // tar calls filter before writing; it must not throw, so problems are collected.
      filter: (path, entry) => {
        const type = 'type' in entry ? entry.type : 'File'
        const size = 'size' in entry ? Number(entry.size) : 0
        const reason = unsafeEntryReason(path, type)
        if (reason) problems.push(reason)
        bytes += size
        entries += 1
        if (bytes > limits.maxBytes) problems.push(`the package unpacks to more than ${limits.maxBytes} bytes`)
        if (entries > limits.maxEntries) problems.push(`the package has more than ${limits.maxEntries} entries`)
        return problems.length === 0
      },
    })
  } catch (err) {
    await rm(dest, { recursive: true, force: true })
    throw new Error(`not a valid .tar.gz package`, { cause: err })
  }
  if (problems.length > 0) {
    await rm(dest, { recursive: true, force: true })
    throw new Error(`unsafe package entry: ${problems[0]}`)
  }
}
