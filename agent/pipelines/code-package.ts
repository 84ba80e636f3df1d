// Packages the flow's folder (as Metaflow's code package does) into a reproducible .tar.gz, stores it in the datastore and names it by its sha256, for generate without --code-url.
import { createHash } from 'node:crypto'
import { lstat, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, sep } from 'node:path'
import { AgentError } from '../errors.js'
import { makeScratchDir } from '../make-dirs.js'
import type { ObjectStore } from '../datastore/datastore.js'

// Metaflow's default METAFLOW_DEFAULT_PACKAGE_SUFFIXES: the files its own code package takes.
export const PACKAGE_SUFFIXES = ['.py', '.R', '.RDS']
// The agent refuses larger code by default (--code-max-bytes); refuse here first, by name.
export const PACKAGE_MAX_BYTES = 64 << 20
const SKIPPED_DIRS = new Set(['__pycache__', 'node_modules'])

export interface CodePackage {
  /** where tasks fetch it: file:// for a local datastore, s3:// for S3 */
  url: string
  sha256: string
  /** the flow file's path inside the package, for --flow-file */
  flowFile: string
  files: number
  bytes: number
}

/** The package's files, relative to the flow's folder and sorted: hidden folders, caches and links are left out, as Metaflow leaves them. */
export async function packageFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string): Promise<void> => {
    const entries = (await readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const e of entries) {
      if (e.name.startsWith('.')) continue
      const full = join(d, e.name)
      if (e.isDirectory()) {
        if (!SKIPPED_DIRS.has(e.name)) await walk(full)
      } else if (e.isFile() && PACKAGE_SUFFIXES.some((s) => e.name.endsWith(s))) {
        out.push(relative(dir, full).split(sep).join('/'))
      }
    }
  }
  await walk(dir)
  return out
}

/**
 * Tars the flow's folder with fixed owners, modes and times, so the same code always gives the
 * same bytes and the same sha256, stores it as `<Flow>/kfp-code/<sha256>.tar.gz` under the
 * datastore root, and returns where it is.
 */
export async function storeCodePackage(flowFile: string, flowName: string, store: ObjectStore, urlOf: (key: string) => string): Promise<CodePackage> {
  const dir = dirname(flowFile)
  const files = await packageFiles(dir)
  const inside = relative(dir, flowFile).split(sep).join('/')
  if (!files.includes(inside)) files.push(inside)
  let bytes = 0
  for (const f of files) bytes += (await lstat(join(dir, f))).size
  if (bytes > PACKAGE_MAX_BYTES) {
    throw new AgentError('usage', `failed to package ${dir}: its ${files.length} files hold ${bytes} bytes, more than ${PACKAGE_MAX_BYTES}`, { hint: 'move data out of the flow\'s folder, or pass --code-url' })
  }
  const scratch = await makeScratchDir(tmpdir(), 'metaflow-kfp-package-')
  try {
    const archive = join(scratch, 'code.tar.gz')
    // Loaded on demand, as the step does: only generate without --code-url needs tar.
    const tar = await import('tar')
    await tar.c({ gzip: true, file: archive, cwd: dir, portable: true, mtime: new Date(0), noDirRecurse: true }, files)
    const sha256 = createHash('sha256').update(await readFile(archive)).digest('hex')
    const key = `${flowName}/kfp-code/${sha256}.tar.gz`
    try {
      await store.putFile(key, archive)
    } catch (err) {
      throw new AgentError('outputs', `failed to store the code package in ${store.root}`, { cause: err, hint: 'check the datastore root and your access to it, or pass --code-url' })
    }
    return { url: urlOf(key), sha256, flowFile: inside, files: files.length, bytes }
  } finally {
    await rm(scratch, { recursive: true, force: true })
  }
}
