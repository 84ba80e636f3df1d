// The KFP v2 pipeline's PlatformSpec (its second YAML document): a pod deadline for each @timeout step, as kfp-kubernetes' set_timeout writes it.
import { DEADLINE_SLACK_SECONDS } from './argo-writer.js'
import type { FlowPlan } from './flow-plan.js'

type Obj = Record<string, unknown>

/**
 * `platforms.kubernetes.deploymentSpec.executors.<executor>.activeDeadlineSeconds` for every step
 * with @timeout: the limit plus the agent's slack (fetching the code, saving the logs), the same
 * deadline the Argo form gives the pod. KFP's driver copies it into the pod's activeDeadlineSeconds,
 * so a step that hangs past Metaflow's own timeout is still stopped. The value is a string, as
 * kfp-kubernetes writes it: the proto field is an int64, which proto-JSON spells as a string.
 * Undefined when no step has @timeout, so such a pipeline stays one document.
 */
export function platformDocument(plan: FlowPlan, executorOf: (task: string) => string = (task) => `exec-${task}`): Obj | undefined {
  const executors: Obj = {}
  for (const p of plan.steps) {
    if (p.timeoutSeconds === null) continue
    executors[executorOf(p.task)] = { activeDeadlineSeconds: String(p.timeoutSeconds + DEADLINE_SLACK_SECONDS) }
  }
  if (Object.keys(executors).length === 0) return undefined
  const sorted = Object.fromEntries(Object.entries(executors).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  return { platforms: { kubernetes: { deploymentSpec: { executors: sorted } } } }
}
