// Drives a flow task by task through the built agent, the way a pipeline would, reading each task's outputs.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect } from 'vitest'
import { agentEnv, runAgent } from './agent-process'
import type { AgentRun } from './agent-process'
import { PYTHON } from './paths'

export interface TaskOutputs {
  task_id: string
  split_count: string
  splits: string
}

export class Orchestrator {
  readonly runs: AgentRun[] = []
  private n = 0

  constructor(
    readonly codeUrl: string,
    readonly runId: string,
    readonly sysroot: string,
    readonly extraEnv: Record<string, string> = {},
  ) {}

  /** Runs one agent command; fails the test unless it exits 0; returns the outputs it wrote. */
  async task(command: string[], extra: string[] = []): Promise<TaskOutputs> {
    const out = join(this.sysroot, 'outputs', String(this.n++))
    const r = await this.raw([...command, '--output-dir', out, ...extra])
    expect(r.code, `${command.join(' ')} failed:\n${r.stdout}\n${r.stderr}`).toBe(0)
    const read = (name: string) => readFileSync(join(out, name), 'utf8')
    return { task_id: read('task_id'), split_count: read('split_count'), splits: read('splits') }
  }

  raw(args: string[]): Promise<AgentRun> {
    const common = [
      '--code-url', this.codeUrl,
      '--python', PYTHON,
      '--datastore-root', join(this.sysroot, '.metaflow'),
      '--run-id', this.runId,
    ]
    return runAgent([...args, ...common], { env: agentEnv(this.extraEnv) }).then((r) => {
      this.runs.push(r)
      return r
    })
  }

  step(name: string, ...placement: string[]): Promise<TaskOutputs> {
    return this.task(['step', name], placement)
  }
}
