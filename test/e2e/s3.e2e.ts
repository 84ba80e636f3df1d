// The foreach template on Kubernetes with an S3 datastore: moto on the pods' bridge, code from s3://, the role assumed through moto's STS.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { localClientEnv, metaflowRun } from '../helpers/metaflow-client'
import { FOREACH_FLOW_TASKS, restoreLocalMetadata, s3ClientEnv } from '../helpers/metaflow-s3'
import { MOTO_KEYS, freePort, makeBucket, putObject } from '../helpers/moto'
import { FLOWS, VENV_BIN } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'
import { applySecret, argo, describeWorkflow, loadTemplate, sharedDir, submit, waitWorkflow, withSharedDatastore } from './cluster'

// The host's address on the pods' bridge (scripts/e2e/env.sh): the only address of this machine both the pods and the tests reach.
const HOST_IP = process.env.E2E_HOST_IP ?? '10.244.0.1'

/** moto's server on the bridge address, for one test; stopped by the returned function. */
async function motoOnBridge(): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const port = await freePort()
  const child = spawn(resolve(VENV_BIN, 'moto_server'), ['-H', HOST_IP, '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  const endpoint = `http://${HOST_IP}:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}: ${out}`)
    if (await fetch(`${endpoint}/moto-api/data.json`).then((r) => r.ok, () => false)) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`moto_server did not answer on ${endpoint} within 30 s: ${out}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    endpoint,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}

describe('the Argo templates on S3', () => {
  const tempDir = useTempDir()

  it("runs foreach_flow.argo.yaml from s3:// code on an S3 datastore under a role assumed through STS, into a run Metaflow's client calls successful", async () => {
    const moto = await motoOnBridge()
    const dir = sharedDir()
    try {
      const bucket = 'e2e-datastore'
      const root = `s3://${bucket}/metaflow`
      const role = 'arn:aws:iam::123456789012:role/e2e-pipeline-role'
      await makeBucket(moto.endpoint, bucket)
      await putObject(moto.endpoint, bucket, 'code/foreach_flow.py', readFileSync(join(FLOWS, 'foreach_flow.py')))
      await applySecret('e2e-moto-keys', { ...MOTO_KEYS })
      const keyRef = (key: string) => ({ name: 'e2e-moto-keys', key })
      const workflow = withSharedDatastore(loadTemplate('foreach_flow.argo.yaml'), dir.path, {
        METAFLOW_DEFAULT_DATASTORE: 's3',
        METAFLOW_DATASTORE_SYSROOT_S3: root,
        METAFLOW_AWS_ARN: role,
        AWS_ENDPOINT_URL: moto.endpoint,
        AWS_ACCESS_KEY_ID: keyRef('AWS_ACCESS_KEY_ID'),
        AWS_SECRET_ACCESS_KEY: keyRef('AWS_SECRET_ACCESS_KEY'),
      })
      const { name, uid } = await submit(workflow, { 'code-url': `s3://${bucket}/code/foreach_flow.py` })
      const wf = await waitWorkflow(name, 480_000)
      expect(wf.status.phase, describeWorkflow(wf)).toBe('Succeeded')
      const logs = await argo(['logs', name])
      expect(logs).toContain(`assumed role ${role}`)
      expect(logs).not.toContain(MOTO_KEYS.AWS_SECRET_ACCESS_KEY)

      const run = `kfp-${uid}`
      const laptop = tempDir()
      const clientEnv = s3ClientEnv(moto.endpoint, root, laptop)
      await restoreLocalMetadata(clientEnv, 'ForeachFlow', run, FOREACH_FLOW_TASKS)
      const report = await metaflowRun(`ForeachFlow/${run}`, clientEnv)
      expect(report.successful).toBe(true)
      expect(report.end.total_letters).toBe(42)
      // Nothing went to the shared local datastore: the run is on S3 only.
      await expect(metaflowRun(`ForeachFlow/${run}`, localClientEnv(dir.path))).rejects.toThrow()
    } finally {
      dir.remove()
      await moto.stop()
    }
  })
})
