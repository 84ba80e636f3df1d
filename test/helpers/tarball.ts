// Builds .tar.gz archives byte by byte, so tests can make entries no honest tool would write.
import { gzipSync } from 'node:zlib'
import { Header } from 'tar'

export interface Entry {
  path: string
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO'
  body?: string
  linkpath?: string
}

export function tarGz(entries: readonly Entry[]): Buffer {
  const blocks: Buffer[] = []
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '')
    const type = e.type ?? 'File'
    const header = Buffer.alloc(512)
    new Header({
      path: e.path,
      type,
      size: type === 'File' ? body.length : 0,
      mode: type === 'Directory' ? 0o755 : 0o644,
      mtime: new Date(0),
      linkpath: e.linkpath,
    }).encode(header, 0)
    blocks.push(header)
    if (type === 'File' && body.length) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512))
    }
  }
  blocks.push(Buffer.alloc(1024))
  return gzipSync(Buffer.concat(blocks))
}
