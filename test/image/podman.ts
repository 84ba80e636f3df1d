// Runs podman the way `make image-test` set it up (runtime and containers.conf from the environment) and collects what it printed.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

export interface Finished {
  code: number | null
  stdout: string
  stderr: string
}

export interface Started {
  child: ChildProcess
  done: Promise<Finished>
  /** resolves when stdout or stderr has printed text matching the pattern */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>
}

/** The image under test; `make image-test` builds it and passes its name. */
export function imageUnderTest(): string {
  const image = process.env.IMAGE
  if (!image) throw new Error('IMAGE is not set: run this suite through `make image-test`')
  return image
}

/** Global podman flags: the OCI runtime `make image-test` chose (crun fails on setrlimit here). */
function globalArgs(): string[] {
  const runtime = process.env.PODMAN_RUNTIME
  return runtime ? ['--runtime', runtime] : []
}

/** `env` reaches podman itself, so `-e NAME` (no value) passes a variable into the container without putting it in argv. */
export function startPodman(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Started {
  const child = spawn('podman', [...globalArgs(), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const waiters: { re: RegExp; resolve: () => void }[] = []
  const check = () => {
    for (const w of [...waiters]) {
      if (w.re.test(stdout) || w.re.test(stderr)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve()
      }
    }
  }
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); check() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); check() })
  const done = new Promise<Finished>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
  return {
    child,
    done,
    waitFor: (re, timeoutMs = 120_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stdout=${stdout} stderr=${stderr}`)), timeoutMs)
        waiters.push({ re, resolve: () => { clearTimeout(timer); resolve() } })
        check()
      }),
  }
}

export function podman(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<Finished> {
  return startPodman(args, env).done
}
