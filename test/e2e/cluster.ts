// Talks to the e2e cluster that `make e2e-up` starts: submits workflows with the project's argo CLI, waits, reads pods.
import { execFile } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { parse, stringify } from 'yaml'
import { REPO } from '../helpers/paths'

const run = promisify(execFile)
const CACHE = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'metaflow-kfp')

export const E2E_DIR = process.env.E2E_DIR ?? resolve(REPO, '.cache', 'e2e')
export const KUBECONFIG = join(E2E_DIR, 'kubeconfig')
export const NAMESPACE = 'argo'
export const ARGO = process.env.ARGO_CLI ?? join(CACHE, 'bin', 'argo-v4.0.5')
export const KUBECTL = process.env.E2E_KUBECTL ?? join(CACHE, 'e2e', `kube-${process.env.KUBE_VERSION ?? 'v1.35.4'}`, 'kubectl')
export const TEMPLATES = resolve(REPO, 'pipeline-templates')

// Why no ARGO_SERVER and an explicit kubeconfig: the CLI then talks to the apiserver directly, never to a default context.
const cliEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG }
  delete env.ARGO_SERVER
  delete env.ARGO_TOKEN
  return env
}

export async function argo(args: readonly string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run(ARGO, [...args, '--kubeconfig', KUBECONFIG, '-n', NAMESPACE], { env: cliEnv(), timeout: timeoutMs, maxBuffer: 64 << 20 })
  return stdout
}

export async function kubectl(args: readonly string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run(KUBECTL, ['--kubeconfig', KUBECONFIG, '-n', NAMESPACE, ...args], { env: cliEnv(), timeout: timeoutMs, maxBuffer: 64 << 20 })
  return stdout
}

// The parts of an Argo Workflow object the tests read.
export interface WorkflowNode {
  id: string
  name: string
  displayName: string
  type: string
  phase: string
  templateName?: string
  message?: string
  children?: string[]
  outputs?: { parameters?: { name: string; value?: string }[]; exitCode?: string }
}
export interface Workflow {
  metadata: { name: string; uid: string }
  status: { phase?: string; message?: string; nodes?: Record<string, WorkflowNode> }
}

/** An environment variable's value taken from a Kubernetes Secret, so it is in no workflow object. */
export interface SecretRef {
  name: string
  key: string
}

/** A folder shared with the pods at the same path (hostPath): the local datastore and the flows' code. */
export interface SharedDir {
  path: string
  /** file:// URL of a flow copied into the shared folder */
  flowUrl(flowFile: string): string
  remove(): void
}

export function sharedDir(): SharedDir {
  const path = mkdtempSync(join(tmpdir(), 'mfkfp-e2e-'))
  // Why 0777: the agent's image runs as uid 1000 and writes the datastore here.
  chmodSync(path, 0o777)
  mkdirSync(join(path, 'flows'), { mode: 0o755 })
  return {
    path,
    flowUrl(flowFile: string) {
      const dest = join(path, 'flows', basename(flowFile))
      copyFileSync(flowFile, dest)
      return `file://${dest}`
    },
    remove() {
      rmSync(path, { recursive: true, force: true })
    },
  }
}

export function loadTemplate(file: string): Record<string, any> {
  return parse(readFileSync(join(TEMPLATES, file), 'utf8')) as Record<string, any>
}

/**
 * Returns the workflow with `dir` mounted at the same path in every pod and set as the local datastore's root.
 * Why podSpecPatch: Argo copies a workflow-level volume into a pod only when a template mounts it.
 */
export function withSharedDatastore(workflow: Record<string, any>, dir: string, env: Record<string, string | SecretRef> = {}): Record<string, any> {
  const wf = structuredClone(workflow)
  const patch = {
    volumes: [{ name: 'e2e-shared', hostPath: { path: dir, type: 'Directory' } }],
    containers: [
      {
        name: 'main',
        volumeMounts: [{ name: 'e2e-shared', mountPath: dir }],
        env: Object.entries({ METAFLOW_DATASTORE_SYSROOT_LOCAL: dir, ...env }).map(([name, value]) =>
          typeof value === 'string' ? { name, value } : { name, valueFrom: { secretKeyRef: value } },
        ),
      },
    ],
  }
  wf.spec.podSpecPatch = JSON.stringify(patch)
  return wf
}

/** Submits a workflow object with `-p NAME=VALUE` parameters; returns its name and uid. */
export async function submit(workflow: Record<string, any>, params: Record<string, string> = {}): Promise<{ name: string; uid: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mfkfp-e2e-wf-'))
  try {
    const file = join(dir, 'workflow.yaml')
    // JSON, not YAML: the yaml package writes YAML 1.2, where a step named y stays a bare y that argo's YAML 1.1 reader takes for true.
    writeFileSync(file, JSON.stringify(workflow))
    const args = ['submit', file, '-o', 'json', ...Object.entries(params).flatMap(([k, v]) => ['-p', `${k}=${v}`])]
    const wf = JSON.parse(await argo(args)) as Workflow
    return { name: wf.metadata.name, uid: wf.metadata.uid }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Creates or replaces a Secret in the namespace from a 0600 file, so its values are on no command line. */
export async function applySecret(name: string, data: Record<string, string>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mfkfp-e2e-secret-'))
  try {
    const file = join(dir, 'secret.yaml')
    writeFileSync(file, stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: data }), { mode: 0o600 })
    await kubectl(['apply', '-f', file])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function getWorkflow(name: string): Promise<Workflow> {
  return JSON.parse(await argo(['get', name, '-o', 'json'])) as Workflow
}

/** Waits (`argo wait`) until the workflow completes, at most `timeoutMs`; returns it as it ended. */
export async function waitWorkflow(name: string, timeoutMs: number): Promise<Workflow> {
  // `argo wait` exits non-zero when the workflow did not succeed: only a workflow still running is an error here.
  const waited = await argo(['wait', name], timeoutMs).then(() => undefined, (e: unknown) => e)
  const wf = await getWorkflow(name)
  if (waited !== undefined && !['Succeeded', 'Failed', 'Error'].includes(wf.status.phase ?? '')) throw waited
  return wf
}

/** Polls until `pred` holds for the workflow, at most `timeoutMs`. */
export async function waitUntil(name: string, pred: (wf: Workflow) => boolean, timeoutMs: number): Promise<Workflow> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const wf = await getWorkflow(name)
    if (pred(wf)) return wf
    if (Date.now() > deadline) throw new Error(`workflow ${name} did not reach the expected state in ${timeoutMs} ms: ${JSON.stringify(wf.status)}`)
    await new Promise((r) => setTimeout(r, 1000))
  }
}

/** The pod nodes of a workflow (one per attempt of each task). */
export function podNodes(wf: Workflow): WorkflowNode[] {
  return Object.values(wf.status.nodes ?? {}).filter((n) => n.type === 'Pod')
}

/** What a workflow did, for failure messages: its phase, message and each pod node's phase and message. */
export function describeWorkflow(wf: Workflow): string {
  const nodes = podNodes(wf).map((n) => `  ${n.displayName}: ${n.phase}${n.message ? ` (${n.message})` : ''}`)
  return [`${wf.metadata.name}: ${wf.status.phase} ${wf.status.message ?? ''}`, ...nodes].join('\n')
}

/** The flow's class name, as Metaflow names the run: `class HelloFlow(FlowSpec)`. */
export function flowName(flowFile: string): string {
  const m = /^class (\w+)\(FlowSpec\)/m.exec(readFileSync(flowFile, 'utf8'))
  if (!m) throw new Error(`no FlowSpec class in ${flowFile}`)
  return m[1] as string
}
