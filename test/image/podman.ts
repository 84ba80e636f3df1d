// Runs podman the way `make image-test` set it up (runtime and containers.conf from the environment) and collects what it printed.
import { startWatched } from '../helpers/watched-process'
import type { Finished, Watched } from '../helpers/watched-process'

export type { Finished }
export type Started = Watched

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
  return startWatched('podman', [...globalArgs(), ...args], { env, defaultTimeoutMs: 120_000 })
}

export function podman(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<Finished> {
  return startPodman(args, env).done
}
