// The image's hashed requirements must pin exactly what image/runtime-pin.txt says: the check that keeps them in step.
import { execFile } from 'node:child_process'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { REPO } from './helpers/paths'
import { useTempDir } from './helpers/temp-dir'

const run = promisify(execFile)
const CHECK = join(REPO, 'scripts', 'image-requirements.sh')
const tempDir = useTempDir('mfkfp-req-')

async function check(dir: string): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(CHECK, ['check', dir])
    return { code: 0, stderr }
  } catch (err) {
    const e = err as { code: number; stderr: string }
    return { code: e.code, stderr: e.stderr }
  }
}

function copyOfImageDir(): string {
  const dir = tempDir()
  for (const f of ['runtime-pin.txt', 'requirements.in', 'requirements.txt']) copyFileSync(join(REPO, 'image', f), join(dir, f))
  return dir
}

describe('the image requirements', () => {
  it('pin the runtime pin, every package with hashes', async () => {
    const pin = readFileSync(join(REPO, 'image', 'runtime-pin.txt'), 'utf8').trim()
    const req = readFileSync(join(REPO, 'image', 'requirements.txt'), 'utf8')
    expect(req).toMatch(new RegExp(`^${pin.replace(/\./g, '\\.')} \\\\\\n {4}--hash=sha256:[0-9a-f]{64}`, 'm'))
    expect(req).toMatch(/^boto3==/m)
    expect(await check(join(REPO, 'image'))).toEqual({ code: 0, stderr: '' })
  })

  it('fail the check with one line naming both versions when the pin moves', async () => {
    const dir = copyOfImageDir()
    writeFileSync(join(dir, 'runtime-pin.txt'), 'metaflow==2.19.37\n')
    const r = await check(dir)
    expect(r.code).toBe(65)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/failed to match .*metaflow==2\.19\.38.*metaflow==2\.19\.37.*run make image-lock/)
  })

  it('fail the check when a package lost its hashes', async () => {
    const dir = copyOfImageDir()
    const req = readFileSync(join(dir, 'requirements.txt'), 'utf8')
    const stripped = req.replace(/^(six==\S+) \\\n( +--hash=sha256:[0-9a-f]{64}( \\)?\n)+/m, '$1\n')
    expect(stripped).not.toBe(req)
    writeFileSync(join(dir, 'requirements.txt'), stripped)
    const r = await check(dir)
    expect(r.code).toBe(65)
    expect(r.stderr).toMatch(/failed to find hashes in .* for six==/)
  })
})
