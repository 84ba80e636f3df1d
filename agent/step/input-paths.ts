// Metaflow's input-paths syntax: plain lists, the "prefix/:a,b" compressed form and the "!" zlib form.
import { inflateSync } from 'node:zlib'

/** Characters Metaflow forbids in run and task ids because they delimit input paths. */
export const FORBIDDEN_ID_CHARS = /[/,:!]/

/** The most input-path text the agent expands: far above a join of a million splits. */
export const MAX_INPUT_PATHS_BYTES = 256 << 20

/** Expands any of Metaflow's three forms into the list of `run/step/task` paths. */
export function decompressInputPaths(text: string): string[] {
  let s = text.trim()
  if (s === '') return []
  if (s.startsWith('!')) {
    // Metaflow's encoder applies zlib twice before base64 (metaflow/util.py compress_list).
    // Bounded, so a few bytes of hostile --input-paths cannot inflate into gigabytes.
    const limit = { maxOutputLength: MAX_INPUT_PATHS_BYTES }
    s = inflateSync(inflateSync(Buffer.from(s.slice(1), 'base64'), limit), limit).toString('utf8')
  }
  const colon = s.indexOf(':')
  if (colon === -1) return s.split(',').filter(Boolean)
  if (s.indexOf(':', colon + 1) !== -1) throw new Error(`more than one ":" in input paths ${JSON.stringify(text)}`)
  const prefix = s.slice(0, colon)
  return s.slice(colon + 1).split(',').filter(Boolean).map((x) => prefix + x)
}

/** Writes paths in the compressed form when they share a prefix, else as a plain list. */
export function compressInputPaths(paths: readonly string[]): string {
  if (paths.length <= 1) return paths.join(',')
  const first = paths[0] as string
  let prefix = first.slice(0, first.lastIndexOf('/') + 1)
  for (const p of paths) {
    while (prefix && !p.startsWith(prefix)) {
      prefix = prefix.slice(0, prefix.slice(0, -1).lastIndexOf('/') + 1)
    }
  }
  if (!prefix) return paths.join(',')
  return `${prefix}:${paths.map((p) => p.slice(prefix.length)).join(',')}`
}
