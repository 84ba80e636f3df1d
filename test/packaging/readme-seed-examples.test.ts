// The README's two seed set-ups for generate (a Metaflow profile named in METAFLOW_PROFILE; exported variables), run as written with the built agent.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { agentEnv, runAgent } from '../helpers/agent-process'
import { REPO, VENV_BIN } from '../helpers/paths'
import { kfpCheck } from '../helpers/template-checks'
import { useTempDir } from '../helpers/temp-dir'

const README = readFileSync(join(REPO, 'README.md'), 'utf8')
const tempDir = useTempDir('mfkfp-readme-')

// Our own flow for the README's `flow.py`: a parameter and a foreach, so the pipeline has a loop and an input.
const FLOW = `from metaflow import FlowSpec, Parameter, step


class ReadmeFlow(FlowSpec):
    times = Parameter('times', default=2, type=int)

    @step
    def start(self):
        self.items = list(range(self.times))
        self.next(self.square, foreach='items')

    @step
    def square(self):
        self.value = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print(self.total)


if __name__ == '__main__':
    ReadmeFlow()
`

/** The text of a README section, from its `## ` heading to the next. */
function section(heading: string): string {
  const start = README.indexOf(`\n## ${heading}`)
  expect(start, `README section ## ${heading}`).toBeGreaterThan(0)
  const end = README.indexOf('\n## ', start + 4)
  return README.slice(start, end < 0 ? undefined : end)
}

function fencedBlocks(text: string, lang: string): string[] {
  return [...text.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1] as string)
}

interface Command {
  line: string
  /** the variables exported before it, and its own VAR=value prefix */
  env: Record<string, string>
  args: string[]
}

/**
 * The generate commands of the README's seed block, with shell semantics for the little shell they
 * use: `export A=x B=y` lines hold for the lines after them, a `VAR=value` prefix for its own line.
 * Anything more (quotes, $, continuations) is refused, so a README change cannot be misread silently.
 */
function seedCommands(): Command[] {
  const block = fencedBlocks(section('Turning a flow into a pipeline: `generate`'), 'sh').find((b) => /METAFLOW_PROFILE=\w+ metaflow-kfp generate/.test(b))
  expect(block, 'the sh block with METAFLOW_PROFILE=… metaflow-kfp generate').toBeDefined()
  const exported: Record<string, string> = {}
  const commands: Command[] = []
  for (const raw of (block as string).split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    expect(line, 'a line this reader understands').not.toMatch(/["'`$\\…&|;<>]/)
    const words = line.split(/\s+/)
    if (words[0] === 'export') {
      for (const w of words.slice(1)) {
        const [k, ...v] = w.split('=')
        exported[k as string] = v.join('=')
      }
      continue
    }
    const env = { ...exported }
    while (/^[A-Z_][A-Z0-9_]*=/.test(words[0] as string)) {
      const [k, ...v] = (words.shift() as string).split('=')
      env[k as string] = v.join('=')
    }
    expect(words.slice(0, 2), line).toEqual(['metaflow-kfp', 'generate'])
    commands.push({ line, env, args: words.slice(1) })
  }
  return commands
}

/** The README's profile in the seed's form (the JSON block of the S3 section). */
function readmeProfile(): Record<string, string> {
  const blocks = fencedBlocks(section('S3, the IAM role and Metaflow profiles'), 'json')
  expect(blocks).toHaveLength(1)
  return JSON.parse(blocks[0] as string) as Record<string, string>
}

const COMMANDS = seedCommands()

describe("the README's seed set-ups for generate", () => {
  it('are two: one with a profile named in METAFLOW_PROFILE, one with exported variables only', () => {
    expect(COMMANDS).toHaveLength(2)
    expect(COMMANDS[0]?.env.METAFLOW_PROFILE).toBeTruthy()
    expect(COMMANDS[1]?.env.METAFLOW_PROFILE).toBeUndefined()
    expect(Object.keys(COMMANDS[1]?.env ?? {}).filter((k) => k.startsWith('METAFLOW_')).length).toBeGreaterThan(1)
  })

  for (const [i, cmd] of COMMANDS.entries()) {
    it(`work as written (${i + 1}: ${cmd.line}), every task carrying the settings`, async () => {
      const home = tempDir()
      const profile = readmeProfile()
      mkdirSync(join(home, '.metaflowconfig'))
      // The profile file is there for both, as on the user's laptop; only METAFLOW_PROFILE makes the first read it.
      if (COMMANDS[0]?.env.METAFLOW_PROFILE) writeFileSync(join(home, '.metaflowconfig', `config_${COMMANDS[0].env.METAFLOW_PROFILE}.json`), JSON.stringify(profile, null, 4))
      const cwd = tempDir()
      writeFileSync(join(cwd, 'flow.py'), FLOW)
      // The user's python3 is one with Metaflow: the project's venv, first on PATH.
      const env = agentEnv({ ...cmd.env, HOME: home, PATH: `${VENV_BIN}${delimiter}${process.env.PATH ?? ''}` })
      const r = await runAgent(cmd.args, { cwd, env })
      expect(r.code, r.stderr).toBe(0)

      const output = cmd.args[cmd.args.indexOf('--output') + 1] as string
      expect(readdirSync(cwd).sort()).toEqual(['flow.py', output].sort())
      expect((await kfpCheck([join(cwd, output)])).output).toBe('ok\n')
      const doc = parse(readFileSync(join(cwd, output), 'utf8')) as {
        root: { inputDefinitions: { parameters: Record<string, { defaultValue?: unknown }> } }
        deploymentSpec: { executors: Record<string, { container: { env?: { name: string; value: string }[] } }> }
      }
      expect(doc.root.inputDefinitions.parameters.code_url?.defaultValue).toBe(cmd.args[cmd.args.indexOf('--code-url') + 1])
      const expected = cmd.env.METAFLOW_PROFILE ? profile : Object.fromEntries(Object.entries(cmd.env).filter(([k]) => k.startsWith('METAFLOW_') || k.startsWith('KFP_')))
      const executors = Object.entries(doc.deploymentSpec.executors)
      expect(executors.length).toBe(4)
      for (const [name, ex] of executors) {
        const taskEnv = Object.fromEntries((ex.container.env ?? []).map((e) => [e.name, e.value]))
        expect(taskEnv, name).toMatchObject(expected)
        // Without METAFLOW_PROFILE the profile file beside it is not read: none of its other keys show up.
        if (!cmd.env.METAFLOW_PROFILE) for (const k of Object.keys(profile).filter((k) => !(k in expected))) expect(taskEnv[k], `${name} ${k}`).toBeUndefined()
      }
    })
  }
})
