// The built image, run task by task as podman containers: Metaflow's client judges the run; signals, zombies and the baked runtime are checked from outside.
import { createHash } from 'node:crypto'
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { FOREACH_FLOW_TASKS, restoreLocalMetadata, s3ClientEnv } from '../helpers/metaflow-s3'
import { MOTO_KEYS, makeBucket, putObject, startMoto } from '../helpers/moto'
import { FIXTURE_FLOWS, FLOWS, REPO } from '../helpers/paths'
import { kfpCheck } from '../helpers/template-checks'
import { useTempDir } from '../helpers/temp-dir'
import { imageUnderTest, podman, startPodman } from './podman'
import type { Finished } from './podman'

const IMAGE = imageUnderTest()
const PIN = readFileSync(join(REPO, 'image', 'runtime-pin.txt'), 'utf8').trim()
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version
const tempDir = useTempDir('mfkfp-image-')

interface Inspected {
  Config: { User: string; Labels: Record<string, string>; Entrypoint: string[] }
}

async function inspectImage(): Promise<Inspected> {
  const r = await podman(['image', 'inspect', IMAGE])
  expect(r.code, r.stderr).toBe(0)
  return (JSON.parse(r.stdout) as Inspected[])[0] as Inspected
}

/** A datastore folder on the host that the image's non-root user can write (rootful podman keeps uids as they are). */
async function dataDir(): Promise<string> {
  const dir = tempDir()
  const [uid, gid] = (await inspectImage()).Config.User.split(':').map(Number)
  expect(uid).toBeGreaterThan(0)
  mkdirSync(join(dir, '.metaflow'))
  chownSync(dir, uid as number, gid ?? (uid as number))
  chownSync(join(dir, '.metaflow'), uid as number, gid ?? (uid as number))
  return dir
}

/**
 * `podman run` of one agent command: flows read-only at /flows, no network, and the datastore folder
 * at the same path as on the host, because Metaflow's local metadata records artifacts by absolute path
 * and the client on the host reads them from there.
 */
function runArgs(data: string, flows: string, agentArgs: readonly string[], extra: readonly string[] = []): string[] {
  return ['run', '--rm', '--network', 'none', '-v', `${flows}:/flows:ro`, '-v', `${data}:${data}`, ...extra, IMAGE, ...agentArgs]
}

function stepArgs(data: string, step: string, flowFile: string, runId: string, placement: readonly string[] = []): string[] {
  return ['step', step, '--code-url', `file:///flows/${flowFile}`, '--datastore-root', join(data, '.metaflow'), '--run-id', runId, ...placement]
}

function expectStepOk(r: Finished, label: string): void {
  expect(r.code, `${label}: ${r.stderr}`).toBe(0)
  expect(r.stderr).toMatch(/metaflow-kfp: running \w+Flow\//)
  // The runtime check found the baked pin: the agent logs "installing …" only when it installs.
  expect(r.stderr).not.toMatch(/installing/i)
  // … and found it by the marker the image build wrote, without starting Python.
  expect(r.stderr).toContain("is there (the image's runtime marker)")
  // … and ran in the Python the image's METAFLOW_KFP_WARM_PYTHON had the agent prestart.
  expect(r.stderr).toContain('the step runs in the prestarted Python')
}

describe('the image', () => {
  it('runs the seed foreach flow task by task, and Metaflow calls the run successful', async () => {
    const data = await dataDir()
    const run = 'kfp-image-foreach'
    const go = (step: string, placement: string[] = []) => podman(runArgs(data, FLOWS, stepArgs(data, step, 'foreach_flow.py', run, placement)))

    const start = await go('start', ['--output-dir', join(data, 'out', 'start')])
    expectStepOk(start, 'start')
    expect(readFileSync(join(data, 'out', 'start', 'split_count'), 'utf8')).toBe('4')
    expect(readFileSync(join(data, 'out', 'start', 'splits'), 'utf8')).toBe('[0,1,2,3]')

    const explores = await Promise.all([0, 1, 2, 3].map((i) => go('explore', ['--parent', 'start', '--split-index', String(i)])))
    explores.forEach((r, i) => expectStepOk(r, `explore ${i}`))
    expectStepOk(await go('join', ['--join-foreach', 'explore', '--num-splits', '4']), 'join')
    expectStepOk(await go('end', ['--parent', 'join']), 'end')

    const report = await metaflowRun(`ForeachFlow/${run}`, localClientEnv(data))
    expect(report.successful).toBe(true)
    expect(report.tasks.explore).toHaveLength(4)
    expect(report.end.results).toEqual(['HOUSE OF CARDS', 'NARCOS', 'STRANGER THINGS', 'SUBURRA'])
    expect(report.end.total_letters).toBe(42)
  })

  it('runs the foreach flow on S3 under an assumed role, with moto on the host network and the baked boto3', async () => {
    const moto = await startMoto()
    try {
      const bucket = 'image-datastore'
      const root = `s3://${bucket}/metaflow`
      await makeBucket(moto.endpoint, bucket)
      await putObject(moto.endpoint, bucket, 'code/foreach_flow.py', readFileSync(join(FLOWS, 'foreach_flow.py')))
      // Values stay in podman's environment; `-e NAME` copies them in, so no key is in any argv.
      const settings: Record<string, string> = {
        ...MOTO_KEYS,
        METAFLOW_DEFAULT_DATASTORE: 's3',
        METAFLOW_DATASTORE_SYSROOT_S3: root,
        METAFLOW_AWS_ARN: 'arn:aws:iam::123456789012:role/image-test-role',
        AWS_ENDPOINT_URL: moto.endpoint,
      }
      const env = { ...process.env, ...settings }
      const pass = Object.keys(settings).flatMap((k) => ['-e', k])
      const run = 'kfp-image-s3'
      const go = (step: string, placement: string[] = []) => podman(['run', '--rm', '--network', 'host', ...pass, IMAGE,
        'step', step, '--code-url', `s3://${bucket}/code/foreach_flow.py`, '--run-id', run, ...placement], env)

      const start = await go('start')
      expectStepOk(start, 's3 start')
      expect(start.stderr).toContain('assumed role arn:aws:iam::123456789012:role/image-test-role')
      const explores = await Promise.all([0, 1, 2, 3].map((i) => go('explore', ['--parent', 'start', '--split-index', String(i)])))
      explores.forEach((r, i) => expectStepOk(r, `s3 explore ${i}`))
      expectStepOk(await go('join', ['--join-foreach', 'explore', '--num-splits', '4']), 's3 join')
      expectStepOk(await go('end', ['--parent', 'join']), 's3 end')

      const laptop = tempDir()
      const clientEnv = s3ClientEnv(moto.endpoint, root, laptop)
      await restoreLocalMetadata(clientEnv, 'ForeachFlow', run, FOREACH_FLOW_TASKS)
      const report = await metaflowRun(`ForeachFlow/${run}`, clientEnv)
      expect(report.successful).toBe(true)
      expect(report.end.total_letters).toBe(42)
    } finally {
      await moto.stop()
    }
  })

  it('passes podman stop\'s SIGTERM through tini and the agent to the step, and exits 143', async () => {
    const data = await dataDir()
    const name = `mfkfp-stop-${process.pid}-${Date.now()}`
    const args = runArgs(data, FIXTURE_FLOWS, stepArgs(data, 'start', 'sleepy_flow.py', 'kfp-image-stop'), ['--name', name, '-e', `SIGNAL_MARKER=${join(data, 'signal.txt')}`])
    const container = startPodman(args.filter((a) => a !== '--rm'))
    try {
      await container.waitFor(/READY/)
      const started = Date.now()
      // A generous timeout: were SIGTERM lost, podman would SIGKILL after 60 s and the code would be 137.
      const stop = await podman(['stop', '--time', '60', name])
      expect(stop.code, stop.stderr).toBe(0)
      const done = await container.done
      expect(Date.now() - started).toBeLessThan(30_000)
      expect(done.code, done.stderr).toBe(143)
      expect(done.stderr).toContain('the step runs in the prestarted Python')
      const state = await podman(['inspect', '--format', '{{.State.ExitCode}}', name])
      expect(state.stdout.trim()).toBe('143')
      expect(readFileSync(join(data, 'signal.txt'), 'utf8')).toBe('SIGTERM')
    } finally {
      await podman(['rm', '--force', '--ignore', name])
    }
  })

  it('leaves no zombie behind when a step orphans a child, because tini reaps it', async () => {
    const data = await dataDir()
    const r = await podman(runArgs(data, FIXTURE_FLOWS, stepArgs(data, 'start', 'orphan_flow.py', 'kfp-image-orphan')))
    expectStepOk(r, 'start')
    expectStepOk(await podman(runArgs(data, FIXTURE_FLOWS, stepArgs(data, 'end', 'orphan_flow.py', 'kfp-image-orphan', ['--parent', 'start']))), 'end')
    const report = await metaflowRun('OrphanFlow/kfp-image-orphan', localClientEnv(data))
    expect(report.successful).toBe(true)
    expect(report.end.zombies).toEqual([])
  })

  it('shows a zombie when the agent runs as PID 1 without tini, so the zombie check can fail', async () => {
    const data = await dataDir()
    const args = runArgs(data, FIXTURE_FLOWS, stepArgs(data, 'start', 'orphan_flow.py', 'kfp-image-no-init'), ['--entrypoint', '/usr/local/bin/metaflow-kfp'])
    expectStepOk(await podman(args), 'start without tini')
    expectStepOk(await podman(runArgs(data, FIXTURE_FLOWS, stepArgs(data, 'end', 'orphan_flow.py', 'kfp-image-no-init', ['--parent', 'start']))), 'end')
    const report = await metaflowRun('OrphanFlow/kfp-image-no-init', localClientEnv(data))
    expect(report.end.zombies).toEqual([expect.objectContaining({ ppid: 1 })])
  })

  it('runs generate on a mounted flow with the baked Metaflow, read-only and offline, into a pipeline the kfp SDK loads', async () => {
    const out = tempDir()
    // As a user would: docker run IMAGE generate /flows/flow.py, the image's own user, its root read-only, no network.
    const generate = (args: string[], extra: string[] = []) =>
      podman(['run', '--rm', '--read-only', '--network', 'none', '-v', `${FLOWS}:/flows:ro`, ...extra, IMAGE, 'generate', '/flows/params_flow.py', ...args])
    const r = await generate(['--code-url', 'https://example.com/flows/params_flow.py'])
    expect(r.code, r.stderr).toBe(0)
    writeFileSync(join(out, 'pipeline.yaml'), r.stdout)
    expect((await kfpCheck([join(out, 'pipeline.yaml')])).output).toBe('ok\n')
    const doc = parse(r.stdout) as { root: { inputDefinitions: { parameters: Record<string, { defaultValue?: unknown }> }; dag: { tasks: Record<string, unknown> } } }
    expect(Object.keys(doc.root.dag.tasks).sort()).toEqual(['end', 'start'])
    expect(doc.root.inputDefinitions.parameters.code_url?.defaultValue).toBe('https://example.com/flows/params_flow.py')

    // Without --code-url the flow's folder is packaged into the datastore: a mounted one, pinned by its sha256.
    const data = await dataDir()
    const packaged = await generate(['--datastore-root', join(data, '.metaflow'), '--output', join(data, 'pipeline.yaml')], ['-v', `${data}:${data}`])
    expect(packaged.code, packaged.stderr).toBe(0)
    const text = readFileSync(join(data, 'pipeline.yaml'), 'utf8')
    const url = (parse(text) as typeof doc).root.inputDefinitions.parameters.code_url?.defaultValue as string
    expect(url).toMatch(new RegExp(`^file://${data}/\\.metaflow/ParamsFlow/kfp-code/([0-9a-f]{64})\\.tar\\.gz$`))
    const sha = createHash('sha256').update(readFileSync(url.slice('file://'.length))).digest('hex')
    expect(url).toContain(sha)
    expect(text).toContain(sha)
  })

  it('starts from the code cache its build wrote, and checks with Python again once its venv changes', async () => {
    const version = await podman(['run', '--rm', '--network', 'none', '-e', 'METAFLOW_KFP_TIMINGS=1', IMAGE, '--version'])
    expect(version.code, version.stderr).toBe(0)
    expect(version.stderr).toMatch(/timings: code-cache=used /)

    // As root, a .pth file added to the venv's site-packages: the marker no longer vouches, and the step still runs.
    const data = await dataDir()
    const step = stepArgs(data, 'start', 'hello_flow.py', 'kfp-image-changed-venv').map((a) => `'${a}'`).join(' ')
    const script = `for d in /opt/metaflow/lib/python3*/site-packages; do echo /nonexistent > "$d/zz-added.pth"; done; exec /usr/local/bin/metaflow-kfp ${step}`
    const r = await podman(runArgs(data, FLOWS, ['-c', script], ['--user', '0', '--entrypoint', 'sh']))
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/the runtime marker does not vouch for python3: .*site-packages changed since it was made; checking with Python/)
    expect(r.stderr).toMatch(/runtime check: metaflow \S+ is there \(\d+ ms\)/)
  })

  it('bakes the pinned Metaflow and boto3, runs as a non-root user and labels its version', async () => {
    const probe = 'import json, os, metaflow, boto3; print(json.dumps([metaflow.__version__, boto3.__version__, os.getuid()]))'
    const r = await podman(['run', '--rm', '--network', 'none', '--entrypoint', 'python3', IMAGE, '-c', probe])
    expect(r.code, r.stderr).toBe(0)
    const [metaflowVersion, boto3Version, uid] = JSON.parse(r.stdout) as [string, string, number]
    expect(`metaflow==${metaflowVersion}`).toBe(PIN)
    expect(readFileSync(join(REPO, 'image', 'requirements.txt'), 'utf8')).toContain(`boto3==${boto3Version} `)
    expect(uid).not.toBe(0)

    const labels = (await inspectImage()).Config.Labels
    expect(labels['org.opencontainers.image.version']).toBe(VERSION)
    expect(labels['metaflow-kfp.runtime']).toBe(PIN)

    expect((await inspectImage()).Config.Entrypoint).toEqual(['/usr/bin/tini', '--', '/usr/local/bin/metaflow-kfp'])
    // The other side of "installs nothing": a pin the image lacks is installed (and here, offline and without pip, refused).
    const data = await dataDir()
    const other = await podman(runArgs(data, FLOWS, [...stepArgs(data, 'start', 'hello_flow.py', 'kfp-image-other-pin'), '--runtime', 'metaflow==2.19.37']))
    expect(other.stderr).toMatch(/installing metaflow==2\.19\.37/)
    expect(other.code, other.stderr).toBe(71)
    expect(other.stderr).toMatch(/metaflow-kfp: error: failed to install metaflow==2\.19\.37/)

    const version = await podman(['run', '--rm', '--network', 'none', IMAGE, '--version'])
    expect(version.code, version.stderr).toBe(0)
    expect(version.stdout.trim()).toBe(VERSION)
  })
})
