// Reading a pipeline file for submit: the spec sent (KFP v2 IR or an Argo Workflow), the platform document, and --param typed by the declared inputs.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AgentError } from '../../agent/errors'
import { parsePipelineFile, typedParameters } from '../../agent/kfp-api/pipeline-file'
import { REPO } from '../helpers/paths'

const PARAMS = readFileSync(join(REPO, 'pipeline-templates', 'params_flow.kfp.yaml'), 'utf8')
const ARGO = readFileSync(join(REPO, 'pipeline-templates', 'params_flow.argo.yaml'), 'utf8')

function refusal(fn: () => unknown): AgentError {
  try {
    fn()
  } catch (err) {
    if (err instanceof AgentError) return err
    throw err
  }
  throw new Error('expected a refusal')
}

describe('a pipeline file for submit', () => {
  it('is sent as the bare IR when it has one document, with its declared inputs', () => {
    const p = parsePipelineFile(PARAMS, 'params.yaml')
    expect(p.pipelineSpec).toHaveProperty('pipelineInfo')
    expect(p.inputs).toMatchObject({ alpha: 'NUMBER_DOUBLE', who: 'STRING' })
  })

  it('is sent as {pipeline_spec, platform_spec} when a platform document follows', () => {
    const p = parsePipelineFile(`${PARAMS}\n---\nplatforms:\n  kubernetes:\n    deploymentSpec: {}\n`, 'p.yaml')
    expect(Object.keys(p.pipelineSpec).sort()).toEqual(['pipeline_spec', 'platform_spec'])
  })

  it('reads an Argo Workflow as one for KFP v1beta1, its workflow parameters as string inputs', () => {
    const p = parsePipelineFile(ARGO, 'params.argo.yaml')
    expect(p.format).toBe('argo')
    expect(p.name).toBe('metaflow-params-flow')
    expect(p.pipelineSpec).toMatchObject({ kind: 'Workflow', spec: { entrypoint: 'main' } })
    expect(p.inputs).toEqual({ 'code-url': 'STRING', alpha: 'STRING', who: 'STRING', count: 'STRING', config: 'STRING' })
    expect(typedParameters({ alpha: '0.75', config: '{"depth": 1}' }, p.inputs, p.name)).toEqual({ alpha: '0.75', config: '{"depth": 1}' })
  })

  it('refuses an Argo object KFP does not run: a WorkflowTemplate, a second document, no templates', () => {
    expect(refusal(() => parsePipelineFile(ARGO.replace('kind: Workflow', 'kind: WorkflowTemplate'), 'x.yaml')).message).toMatch(/an Argo WorkflowTemplate, and KFP runs only a Workflow/)
    expect(refusal(() => parsePipelineFile(`${ARGO}
---
a: 1
`, 'x.yaml')).message).toMatch(/must hold one document/)
    expect(refusal(() => parsePipelineFile('apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nspec: {}\n', 'x.yaml')).message).toMatch(/has no spec.templates/)
  })

  it('refuses a YAML file that is not a pipeline, and a third document', () => {
    expect(refusal(() => parsePipelineFile('a: 1\n', 'x.yaml')).message).toMatch(/not a KFP v2 pipeline/)
    expect(refusal(() => parsePipelineFile(`${PARAMS}\n---\nplatforms: {}\n---\nmore: 1\n`, 'x.yaml')).message).toMatch(/only one platform document/)
  })

  it('types each --param as the pipeline declares it', () => {
    const inputs = { n: 'NUMBER_INTEGER', x: 'NUMBER_DOUBLE', b: 'BOOLEAN', l: 'LIST', s: 'STRUCT', t: 'STRING' }
    expect(typedParameters({ n: '3', x: '0.5', b: 'true', l: '[1, "a"]', s: '{"k": 1}', t: '007' }, inputs, 'p')).toEqual({ n: 3, x: 0.5, b: true, l: [1, 'a'], s: { k: 1 }, t: '007' })
  })

  it('refuses a value of the wrong type and a name the pipeline does not declare, naming its inputs', () => {
    const inputs = { n: 'NUMBER_INTEGER', l: 'LIST' }
    expect(refusal(() => typedParameters({ n: '1.5' }, inputs, 'p')).message).toMatch(/"1\.5" is not a whole number/)
    expect(refusal(() => typedParameters({ l: '{"a": 1}' }, inputs, 'p')).message).toMatch(/not a JSON list/)
    const e = refusal(() => typedParameters({ m: '1' }, inputs, 'p'))
    expect(e.message).toMatch(/declares no such input/)
    expect(e.hint).toBe('its inputs are: n, l')
  })
})
