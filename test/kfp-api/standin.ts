// Starts test/helpers/kfp-standin.py (KFP's REST contract on loopback, from the .venv) and reads what it received.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
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

export async function startStandIn(dir: string, config: Record<string, unknown>): Promise<StandIn> {
  const cfg = join(dir, `standin-${Date.now()}-${Math.random().toString(16).slice(2)}.json`)
  writeFileSync(cfg, JSON.stringify(config))
  const p = spawn(PYTHON, [STANDIN, cfg], { stdio: ['ignore', 'pipe', 'pipe'] })
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
