// Starts test/helpers/kfp-standin.py (KFP 2's REST contract on loopback, from the .venv) or kfp-standin-v1.py (KFP 1.8's v1beta1, from .venv-kfp1) and reads what it received.
import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { PYTHON, REPO } from '../helpers/paths'

export interface LoggedRequest {
  method: string
  path: string
  query: Record<string, string>
  authorization: string | null
  cookie: string | null
  body: string
  status?: number
  /** KFP 1.8's stand-in: the body fields KFP 1.8 would have dropped as unknown */
  unknown_fields?: string[]
}

export interface StandIn {
  url: string
  port: number
  log(): Promise<LoggedRequest[]>
  runs(): Promise<Record<string, unknown>[]>
  pipelines(): Promise<{ pipelines: Record<string, any>[]; versions: Record<string, any>[] }>
  faults(f: { method: string; path: string; status?: number; reset?: boolean; delay?: number; count: number; after?: boolean; message?: string }[]): Promise<void>
  configure(c: Record<string, unknown>): Promise<void>
  stop(): Promise<void>
}

export const STANDIN = resolve(REPO, 'test', 'helpers', 'kfp-standin.py')
export const STANDIN_V1 = resolve(REPO, 'test', 'helpers', 'kfp-standin-v1.py')
/** The second venv (make kfp1-venv): kfp 1.8.22 and kfp-server-api 1.8.5, which cannot live beside kfp 2 in .venv. */
export const PYTHON_KFP1 = resolve(REPO, '.venv-kfp1', 'bin', 'python')

/** KFP 2.x's API (v2beta1). */
export async function startStandIn(dir: string, config: Record<string, unknown>): Promise<StandIn> {
  return start(PYTHON, STANDIN, dir, config)
}

/** KFP 1.8's API (v1beta1 only). */
export async function startStandInV1(dir: string, config: Record<string, unknown>): Promise<StandIn> {
  if (!existsSync(PYTHON_KFP1)) throw new Error(`no ${PYTHON_KFP1}: run make kfp1-venv first`)
  return start(PYTHON_KFP1, STANDIN_V1, dir, config)
}

async function start(python: string, script: string, dir: string, config: Record<string, unknown>): Promise<StandIn> {
  const cfg = join(dir, `standin-${Date.now()}-${Math.random().toString(16).slice(2)}.json`)
  writeFileSync(cfg, JSON.stringify(config))
  const p = spawn(python, [script, cfg], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  p.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const done = new Promise<void>((res) => p.once('close', () => res()))
  const port = await new Promise<number>((res, rej) => {
    let out = ''
    const timer = setTimeout(() => rej(new Error(`the stand-in did not start in 90 s: ${err}`)), 90_000)
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /listening (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        res(Number(m[1]))
      }
    })
    p.once('close', () => rej(new Error(`the stand-in exited: ${err}`)))
  })
  const url = `http://127.0.0.1:${port}`
  const json = async (path: string, body?: unknown) => {
    const r = await fetch(url + path, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) })
    return r.json()
  }
  return {
    url,
    port,
    log: () => json('/_standin/log') as Promise<LoggedRequest[]>,
    runs: () => json('/_standin/runs') as Promise<Record<string, unknown>[]>,
    pipelines: () => json('/_standin/pipelines') as Promise<{ pipelines: Record<string, any>[]; versions: Record<string, any>[] }>,
    faults: async (f) => void (await json('/_standin/faults', f)),
    configure: async (c) => void (await json('/_standin/config', c)),
    stop: async () => {
      p.kill('SIGTERM')
      await done
    },
  }
}
