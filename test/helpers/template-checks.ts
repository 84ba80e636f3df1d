// Checks pipeline files with the kfp SDK's strict loader and with Argo's own linter (argo lint --offline --strict).
import { execFile } from 'node:child_process'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { PYTHON } from './paths'

const run = promisify(execFile)
// `make test` builds it (make argo-cli) and passes its path; the default is where the Makefile puts it.
export const ARGO_CLI = process.env.ARGO_CLI ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'metaflow-kfp', 'bin', 'argo-v4.0.5')

// Strict proto-JSON parsing of the PipelineSpec (unknown fields fail), then the SDK's own loader.
// A second document must be a PlatformSpec whose Kubernetes executor configs parse strictly as
// kfp-kubernetes' protos and name executors of the pipeline.
const KFP_CHECK = `
import sys, yaml
from google.protobuf import json_format
from kfp import components
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2
for path in sys.argv[1:]:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    doc = docs[0]
    try:
        spec = json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
        if spec.schema_version != '2.1.0':
            raise ValueError('schemaVersion is %r, not 2.1.0' % spec.schema_version)
        if len(docs) > 2:
            raise ValueError('%d YAML documents: a pipeline and at most its PlatformSpec' % len(docs))
        if len(docs) == 2:
            platform = json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
            for name, platform_spec in platform.platforms.items():
                if name != 'kubernetes':
                    raise ValueError('platform %s is not kubernetes' % name)
                for label, config in platform_spec.deployment_spec.executors.items():
                    if label not in doc.get('deploymentSpec', {}).get('executors', {}):
                        raise ValueError('the PlatformSpec names executor %s, which the pipeline lacks' % label)
                    json_format.ParseDict(json_format.MessageToDict(config), kubernetes_executor_config_pb2.KubernetesExecutorConfig(), ignore_unknown_fields=False)
        components.load_component_from_file(path)
    except Exception as e:
        print('%s: %s' % (path, e))
        sys.exit(1)
print('ok')
`

/** Loads each KFP v2 file strictly; `output` is "ok\n" when all load, else the first file's error. */
export async function kfpCheck(paths: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout } = await run(PYTHON, ['-c', KFP_CHECK, ...paths], { timeout: 120_000 })
    return { ok: true, output: stdout }
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string }
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}

/** Runs `argo lint --offline --strict` on the files; throws when the argo CLI has not been built. */
export async function argoLint(paths: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run(ARGO_CLI, ['lint', '--offline', '--strict', '--output', 'simple', ...paths], { timeout: 120_000 })
    return { ok: true, output: stdout + stderr }
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: unknown }
    if (e.code === 'ENOENT') throw new Error(`the argo CLI is missing at ${ARGO_CLI}: run make argo-cli (or make test)`)
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}
