// run-local's reader of pipeline files: a KFP v2 pipeline may carry its PlatformSpec as a second YAML document, nothing else may.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseTemplate } from '../../agent/pipelines/template-load'
import { REPO } from '../helpers/paths'

const KFP = readFileSync(join(REPO, 'pipeline-templates', 'hello_flow.kfp.yaml'), 'utf8')
const ARGO = readFileSync(join(REPO, 'pipeline-templates', 'hello_flow.argo.yaml'), 'utf8')
const PLATFORM = 'platforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-start:\n          activeDeadlineSeconds: "900"\n'

describe('parseTemplate', () => {
  it('reads a KFP v2 pipeline followed by its PlatformSpec, which run-local refused although generate writes one for @timeout', () => {
    const t = parseTemplate(`${KFP}\n---\n${PLATFORM}`, 'p.yaml')
    expect(t.form).toBe('kfp')
    expect(t.doc.pipelineInfo).toEqual({ name: 'metaflow-hello-flow' })
  })

  it.each([
    ['an Argo Workflow with a second document', `${ARGO}\n---\n${PLATFORM}`],
    ['a second document that is not a PlatformSpec', `${KFP}\n---\nkind: ConfigMap\n`],
    ['a third document', `${KFP}\n---\n${PLATFORM}---\n${PLATFORM}`],
  ])('refuses %s with one line', (_, text) => {
    expect(() => parseTemplate(text, 'p.yaml')).toThrow(/failed to run the template p\.yaml locally: run-local supports a second YAML document only as a KFP pipeline's PlatformSpec/)
  })
})
