// The npm package: `npm pack` of a clone ships the one-file bundle alone, and it installs and runs generate with no registry and no node_modules.
import { execFile } from 'node:child_process'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { PYTHON, REPO } from '../helpers/paths'
import { kfpCheck } from '../helpers/template-checks'

const run = promisify(execFile)
const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string }
const TARBALL = `${PKG.name}-${PKG.version}.tgz`

// Our own example: a parameter with a default, so the pipeline carries a typed root input.
const FLOW = `from metaflow import FlowSpec, Parameter, step


class PackagedFlow(FlowSpec):
    greeting = Parameter('greeting', default='hi', help='what to say')

    @step
    def start(self):
        self.words = [self.greeting, 'there']
        self.next(self.end)

    @step
    def end(self):
        print(' '.join(self.words))


if __name__ == '__main__':
    PackagedFlow()
`

let root: string
/** What a clone holds that the build reads (agent/, scripts/*.mjs, the pin, package.json), with no dist/ and the repo's node_modules linked in. */
let clone: string
let tarball: string

/**
 * npm with a throwaway HOME and cache, and a registry nothing listens on: any command that tried to
 * download would fail, so a pass shows the package needs no registry.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|NODE_PATH$|AWS_|METAFLOW_)/i.test(k)) env[k] = v
  return {
    ...env,
    HOME: join(root, 'home'),
    npm_config_cache: join(root, 'npm-cache'),
    npm_config_registry: 'http://127.0.0.1:9/',
    npm_config_update_notifier: 'false',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
  }
}

async function sh(command: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(command, args, { cwd, env: npmEnv(), timeout: 120_000, maxBuffer: 16 * 1024 * 1024 })
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string }
    throw new Error(`${command} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
}

/** A fresh folder outside the repo holding the example flow, so nothing can resolve the repo's node_modules from there. */
function flowDir(name: string): string {
  const dir = join(root, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'packaged_flow.py'), FLOW)
  return dir
}

async function expectLoadablePipeline(path: string): Promise<void> {
  const check = await kfpCheck([path])
  expect(check.output).toBe('ok\n')
  const doc = parse(readFileSync(path, 'utf8')) as { root: { inputDefinitions: { parameters: Record<string, { parameterType: string; defaultValue?: unknown }> }; dag: { tasks: Record<string, unknown> } } }
  expect(Object.keys(doc.root.dag.tasks).sort()).toEqual(['end', 'start'])
  expect(doc.root.inputDefinitions.parameters.greeting).toMatchObject({ parameterType: 'STRING', defaultValue: 'hi' })
  expect(doc.root.inputDefinitions.parameters.code_url?.defaultValue).toBe('https://example.com/flows/packaged_flow.py')
}

const GENERATE = ['generate', 'packaged_flow.py', '--python', PYTHON, '--code-url', 'https://example.com/flows/packaged_flow.py']

describe('the npm package', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'mfkfp-npm-'))
    mkdirSync(join(root, 'home'))
    clone = join(root, 'clone')
    mkdirSync(join(clone, 'scripts'), { recursive: true })
    mkdirSync(join(clone, 'image'))
    cpSync(join(REPO, 'agent'), join(clone, 'agent'), { recursive: true })
    const buildScripts = readdirSync(join(REPO, 'scripts')).filter((f) => f.endsWith('.mjs')).map((f) => `scripts/${f}`)
    for (const f of ['package.json', 'package-lock.json', 'README.md', 'tsconfig.json', 'image/runtime-pin.txt', ...buildScripts]) copyFileSync(join(REPO, f), join(clone, f))
    if (existsSync(join(REPO, 'LICENSE'))) copyFileSync(join(REPO, 'LICENSE'), join(clone, 'LICENSE'))
    symlinkSync(join(REPO, 'node_modules'), join(clone, 'node_modules'))
    // Packs in the copy, so prepack builds its own dist/ and never rewrites the repo's while other suites run it.
    const out = join(root, 'packed')
    mkdirSync(out)
    await sh('npm', ['pack', '--pack-destination', out], clone)
    tarball = join(out, TARBALL)
  }, 180_000)

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true })
  })

  it('builds the bundle when npm pack runs in a clone that has none', () => {
    const bundle = join(clone, 'dist', 'metaflow-kfp')
    expect(existsSync(bundle)).toBe(true)
    expect(statSync(bundle).mode & 0o111).not.toBe(0)
  })

  it('packs nothing but the bundle, package.json, the README and a licence', async () => {
    const { stdout } = await sh('tar', ['tzf', tarball], root)
    const entries = stdout.trim().split('\n').sort()
    const allowed = ['package/README.md', 'package/dist/metaflow-kfp', 'package/package.json', 'package/LICENSE']
    expect(entries.filter((e) => !allowed.includes(e))).toEqual([])
    expect(entries).toEqual(expect.arrayContaining(['package/dist/metaflow-kfp', 'package/package.json']))
  })

  it('declares a bin and no dependency an install would have to download', async () => {
    const { stdout } = await sh('tar', ['xzOf', tarball, 'package/package.json'], root)
    const pkg = JSON.parse(stdout) as Record<string, unknown>
    expect(pkg.bin).toEqual({ 'metaflow-kfp': 'dist/metaflow-kfp' })
    for (const key of ['dependencies', 'optionalDependencies', 'peerDependencies', 'bundleDependencies', 'bundledDependencies']) expect(pkg[key], key).toBeUndefined()
    // An install script would run (or, on npm 11, warn) on every install of the tarball.
    const scripts = (pkg.scripts ?? {}) as Record<string, string>
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) expect(scripts[hook], hook).toBeUndefined()
  })

  it('installs with npm install -g into a fresh prefix offline, and the installed bin prints its version and generates a pipeline the kfp SDK loads', async () => {
    const prefix = join(root, 'prefix')
    await sh('npm', ['install', '-g', '--offline', '--prefix', prefix, tarball], root)
    const bin = join(prefix, 'bin', 'metaflow-kfp')
    // One file and no node_modules beside it: the bundle holds every dependency.
    expect(existsSync(join(prefix, 'lib', 'node_modules', PKG.name, 'node_modules'))).toBe(false)
    expect((await sh(bin, ['--version'], root)).stdout.trim()).toBe(PKG.version)

    const dir = flowDir('installed')
    await sh(bin, [...GENERATE, '--output', 'pipeline.yaml'], dir)
    await expectLoadablePipeline(join(dir, 'pipeline.yaml'))
    // generate with --code-url only reads the flow: no .metaflow folder is left in the user's folder.
    expect(readdirSync(dir).sort()).toEqual(['packaged_flow.py', 'pipeline.yaml'])
  })

  it('runs from the tarball with npx ./metaflow-kfp-<version>.tgz, offline, and prints a pipeline the kfp SDK loads', async () => {
    const dir = flowDir('npx')
    copyFileSync(tarball, join(dir, TARBALL))
    chmodSync(join(dir, TARBALL), 0o644)
    expect((await sh('npx', ['--yes', '--offline', `./${TARBALL}`, '--version'], dir)).stdout.trim()).toBe(PKG.version)
    const { stdout } = await sh('npx', ['--yes', '--offline', `./${TARBALL}`, ...GENERATE], dir)
    writeFileSync(join(root, 'npx-pipeline.yaml'), stdout)
    await expectLoadablePipeline(join(root, 'npx-pipeline.yaml'))
  })
})
