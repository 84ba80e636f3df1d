// `metaflow-kfp generate`: reads a flow through Metaflow and writes it as a KFP v2 pipeline or an Argo Workflow, to a file (atomically) or stdout.
import { randomBytes } from 'node:crypto'
import { rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { AGENT_VERSION } from '../build-info.js'
import { AgentError } from '../errors.js'
import { readProfile, resolveSettings, SETTING_KEYS } from '../settings.js'
import type { ResolvedSettings, SettingFlags } from '../settings.js'
import { LocalStore } from '../datastore/datastore.js'
import { resolveLocalDatastoreRoot } from '../datastore/datastore-root.js'
import { storeCodePackage } from './code-package.js'
import type { CodePackage } from './code-package.js'
import type { Io } from '../step/run-step.js'
import { writeArgo } from './argo-writer.js'
import { planFlow } from './flow-plan.js'
import type { FlowPlan } from './flow-plan.js'
import { readFlow } from './flow-reader.js'
import type { FlowInfo, FlowParameter } from './flow-reader.js'
import { writeKfp } from './kfp-writer.js'
import type { WriterOptions } from './kfp-writer.js'

export interface GenerateConfig {
  command: 'generate'
  flowFile: string
  codeUrl?: string | undefined
  /** the flow's path inside a code package */
  packageFlowFile?: string | undefined
  flowName?: string | undefined
  image?: string | undefined
  format: 'kfp' | 'argo'
  output?: string | undefined
  python: string
  /** NAME=VALUE: a parameter's default in the pipeline, instead of the flow's */
  params: Record<string, string>
  name?: string | undefined
  /** @project's --branch and --production, carried to every task */
  branch?: string | undefined
  production?: boolean | undefined
  flags: SettingFlags
}

/** The agent's path inside the image (see the Dockerfile). */
export const IMAGE_COMMAND = '/usr/local/bin/metaflow-kfp'

export async function runGenerate(cfg: GenerateConfig, io: Io): Promise<number> {
  const settings = resolveSettings(cfg.flags, io.env)
  // Carried into every task: what the flag, the environment or the profile set, never the agent's defaults.
  const env: Record<string, string> = {}
  for (const key of SETTING_KEYS) {
    const s = settings.values[key]
    if (s.source !== 'default' && s.value !== undefined) env[key] = s.value
  }
  // Checked before the flow is read or its package stored, so a bad image leaves nothing behind.
  const image = imageOf(cfg, io.env)
  const flow = await readFlow(resolve(io.cwd, cfg.flowFile), {
    python: cfg.python,
    flowName: cfg.flowName,
    datastore: settings.values.METAFLOW_DEFAULT_DATASTORE.value,
    env: io.env,
    cwd: io.cwd,
    storeFiles: fileStore(cfg, settings, io),
    values: cfg.params,
    branch: cfg.branch,
    production: cfg.production,
  })
  for (const p of flow.parameters) if (p.isFile && typeof p.default === 'string') io.log(`stored the file of IncludeFile ${p.name} at ${includedUrl(p.default)}`)
  let code: Pick<GenerateConfig, 'codeUrl' | 'packageFlowFile'> & { codeSha256?: string | undefined } = { codeUrl: cfg.codeUrl, packageFlowFile: cfg.packageFlowFile }
  if (cfg.codeUrl === undefined) {
    // No URL: the flow's folder becomes a package in the datastore, pinned by its sha256.
    const pkg = await packageIntoDatastore(resolve(io.cwd, cfg.flowFile), flow.flowName, cfg, settings, io)
    io.log(`stored the code package (${pkg.files} files, ${pkg.bytes} bytes) at ${pkg.url}`)
    code = { codeUrl: pkg.url, packageFlowFile: cfg.packageFlowFile ?? pkg.flowFile, codeSha256: pkg.sha256 }
  }
  const text = generateText(flow, { ...cfg, ...code }, env, image)
  if (cfg.output === undefined) {
    await io.stdout(Buffer.from(text.endsWith('\n') ? text.slice(0, -1) : text))
    return 0
  }
  await writeAtomically(resolve(io.cwd, cfg.output), text)
  io.log(`wrote ${cfg.format === 'kfp' ? 'the KFP v2 pipeline' : 'the Argo Workflow'} for ${flow.flowName} (${flow.steps.length} steps) to ${cfg.output}`)
  return 0
}

/** The pipeline text for a flow Metaflow described: pure, for tests. */
export function generateText(
  flow: FlowInfo,
  cfg: Pick<GenerateConfig, 'format' | 'codeUrl' | 'packageFlowFile' | 'params' | 'name' | 'flowFile' | 'branch' | 'production'> & { codeSha256?: string | undefined },
  env: Record<string, string>,
  image: string,
): string {
  const plan = planFlow({ ...flow, parameters: withDefaults(flow.parameters, cfg.params, flow.flowName) })
  const o: WriterOptions = {
    name: cfg.name ?? `metaflow-${kebab(flow.flowName)}`,
    image,
    codeUrl: cfg.codeUrl,
    flowFile: cfg.packageFlowFile,
    codeSha256: cfg.codeSha256,
    env,
    command: IMAGE_COMMAND,
    header: headerOf(plan, flow, cfg),
    topLevel: [...(cfg.branch !== undefined ? ['--branch', cfg.branch] : []), ...(cfg.production ? ['--production'] : [])],
  }
  checkName(o.name, cfg.format)
  return cfg.format === 'kfp' ? writeKfp(plan, o) : writeArgo(plan, o)
}

async function packageIntoDatastore(flowFile: string, flowName: string, cfg: GenerateConfig, settings: ResolvedSettings, io: Io): Promise<CodePackage> {
  if (settings.values.METAFLOW_DEFAULT_DATASTORE.value !== 's3') {
    const root = resolveLocalDatastoreRoot(cfg.flags.datastoreRoot, io)
    return storeCodePackage(flowFile, flowName, new LocalStore(root), (key) => `file://${join(root, key)}`)
  }
  const root = settings.values.METAFLOW_DATASTORE_SYSROOT_S3.value
  if (!root || !/^s3:\/\/[^/]+/.test(root)) {
    throw new AgentError('usage', 'failed to store the code package: no S3 datastore root', { hint: 'set --datastore-root s3://bucket/prefix (or METAFLOW_DATASTORE_SYSROOT_S3), or pass --code-url' })
  }
  // Loaded on demand: the AWS SDK is needed only to store a package on S3. Your own credentials
  // write it (the default chain); the tasks read it as the role.
  const { S3Store, s3Endpoint } = await import('../aws/s3-store.js')
  const store = await S3Store.open(root, {
    region: settings.values.METAFLOW_AWS_S3_REGION.value ?? io.env.AWS_REGION ?? 'us-east-1',
    endpoint: s3Endpoint(settings.values.METAFLOW_S3_ENDPOINT_URL.value, io.env),
    maxAttempts: 3,
  })
  return storeCodePackage(flowFile, flowName, store, (key) => `${root.replace(/\/+$/, '')}/${key}`)
}

/**
 * Where IncludeFile defaults go: Metaflow's own place in the datastore (`<root>/data/<Flow>/<sha1>`),
 * as METAFLOW_DATATOOLS_* settings for the reader's Python. Undefined when S3 has no root.
 */
function fileStore(cfg: GenerateConfig, settings: ResolvedSettings, io: Io): { env: Record<string, string> } | undefined {
  if (settings.values.METAFLOW_DEFAULT_DATASTORE.value !== 's3') {
    return { env: { METAFLOW_DATATOOLS_LOCALROOT: join(resolveLocalDatastoreRoot(cfg.flags.datastoreRoot, io), 'data') } }
  }
  const root = settings.values.METAFLOW_DATASTORE_SYSROOT_S3.value
  if (!root) return undefined
  const env: Record<string, string> = { METAFLOW_DATASTORE_SYSROOT_S3: root, METAFLOW_DATATOOLS_S3ROOT: `${root.replace(/\/+$/, '')}/data` }
  const endpoint = settings.values.METAFLOW_S3_ENDPOINT_URL.value
  if (endpoint) env.METAFLOW_S3_ENDPOINT_URL = endpoint
  const region = settings.values.METAFLOW_AWS_S3_REGION.value
  if (region && !io.env.AWS_REGION && !io.env.AWS_DEFAULT_REGION) env.AWS_DEFAULT_REGION = region
  return { env }
}

/** The URL inside Metaflow's IncludeFile descriptor, for the log line. */
function includedUrl(descriptor: string): string {
  try {
    const url = (JSON.parse(descriptor) as { url?: unknown }).url
    return typeof url === 'string' ? url : descriptor
  } catch {
    return descriptor
  }
}

function imageOf(cfg: GenerateConfig, env: NodeJS.ProcessEnv): string {
  const fromProfile = readProfile(env).values.METAFLOW_KFP_IMAGE
  const [image, source] = cfg.image ? [cfg.image, '--image']
    : env.METAFLOW_KFP_IMAGE ? [env.METAFLOW_KFP_IMAGE, 'METAFLOW_KFP_IMAGE']
    : typeof fromProfile === 'string' && fromProfile !== '' ? [fromProfile, 'the profile\'s METAFLOW_KFP_IMAGE']
    : [`metaflow-kfp:${AGENT_VERSION}`, 'the default']
  if (!IMAGE_REFERENCE.test(image)) {
    throw new AgentError('usage', `failed to accept the image ${JSON.stringify(image)} from ${source}: it is not an image reference`, {
      hint: 'give [registry[:port]/]name[:tag][@sha256:digest], lower-case name, no spaces',
    })
  }
  return image
}

// An image reference as container runtimes parse it: optional registry host[:port], lower-case path
// components joined by . _ __ or -, an optional tag and an optional digest.
const IMAGE_REFERENCE = new RegExp(
  '^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?|\\[[0-9a-fA-F:]+\\](?::[0-9]+)?)/)?' +
  '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*' +
  '(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$',
)

/** --param NAME=VALUE at generate time replaces a parameter's default, checked against its type. */
function withDefaults(params: readonly FlowParameter[], given: Record<string, string>, flowName: string): FlowParameter[] {
  for (const name of Object.keys(given)) {
    if (!params.some((p) => p.name === name)) {
      throw new AgentError('usage', `failed to set parameter ${name}: ${flowName} has no such Parameter`, { hint: `its parameters are: ${params.map((p) => p.name).join(', ') || 'none'}` })
    }
  }
  return params.map((p) => {
    const text = given[p.name]
    // An IncludeFile's value given here is a file the flow reader already stored; its default is the descriptor.
    if (text === undefined || p.isFile) return p
    return { ...p, default: typed(text, p) }
  })
}

function typed(text: string, p: FlowParameter): string | number | boolean {
  const bad = (what: string) => new AgentError('usage', `failed to set parameter ${p.name}: ${JSON.stringify(text)} is not ${what}`, { hint: `give --param ${p.name}=VALUE as the flow declares it` })
  switch (p.type) {
    case 'int':
      if (!/^[-+]?\d+$/.test(text.trim())) throw bad('a whole number')
      return Number(text.trim())
    case 'float': {
      const n = Number(text.trim())
      if (text.trim() === '' || !Number.isFinite(n)) throw bad('a number')
      return n
    }
    case 'bool': {
      const t = text.trim().toLowerCase()
      if (['true', '1', 'yes', 'y'].includes(t)) return true
      if (['false', '0', 'no', 'n'].includes(t)) return false
      throw bad('true or false')
    }
    case 'JSON':
      try {
        JSON.parse(text)
      } catch {
        throw bad('JSON')
      }
      return text
    default:
      return text
  }
}

function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').replace(/_/g, '-').toLowerCase()
}

function checkName(name: string, format: string): void {
  // Argo's generateName becomes part of a Kubernetes object name; KFP shows it as the pipeline's name.
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 100) {
    throw new AgentError('usage', `failed to accept --name ${JSON.stringify(name)} for the ${format} form: expected lowercase letters, digits and dashes`, { hint: 'e.g. --name my-flow' })
  }
}

function headerOf(plan: FlowPlan, flow: FlowInfo, cfg: Pick<GenerateConfig, 'format' | 'flowFile'>): string[] {
  const shape = plan.steps.map((s) => `${s.step}${s.stack.length ? ` (in foreach ${s.stack.join(' > ')})` : ''}`).join(', ')
  return [
    `${cfg.format === 'kfp' ? 'KFP v2 pipeline (IR, schemaVersion 2.1.0)' : 'Argo Workflow'} for ${flow.flowName} in ${basename(cfg.flowFile)}, written by metaflow-kfp ${AGENT_VERSION} generate.`,
    `Steps: ${shape}.`,
    'Each task runs one Metaflow step with the metaflow-kfp agent; regenerate rather than edit (see README.md).',
  ]
}

/** Writes next to the target and renames, so a reader sees the whole file or none of it. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    await writeFile(tmp, text, { flag: 'wx', mode: 0o644 })
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined)
    throw new AgentError('outputs', `failed to write ${path}`, { cause: err, hint: 'check that its folder exists and is writable' })
  }
}
