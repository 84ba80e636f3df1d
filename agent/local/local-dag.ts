// Walks a DAG of async nodes for run-local: each node starts once its dependencies ended (succeeded, skipped or omitted); after a failure nothing new starts.
import { AgentError } from '../errors.js'

/** How a node ended: it ran and succeeded, its own condition skipped it, or what it waits for ruled it out. */
export type NodeStatus = 'succeeded' | 'skipped' | 'omitted'

export interface DagNode {
  name: string
  deps: readonly string[]
  /** Called once every dependency has ended, with how each ended; returns how this node ended (succeeded when nothing). */
  run: (status: ReadonlyMap<string, NodeStatus>) => Promise<NodeStatus | void>
}

/**
 * Runs every node after its dependencies, as many at once as the graph allows (the process
 * slots bound the real work). On the first failure no further node starts; the ones already
 * running finish, then the first error is thrown. Returns how each node ended.
 */
export async function walkDag(nodes: readonly DagNode[], where: string): Promise<Map<string, NodeStatus>> {
  checkGraph(nodes, where)
  const done = new Map<string, NodeStatus>()
  const started = new Set<string>()
  const running = new Set<Promise<void>>()
  let failure: { err: unknown } | undefined

  const startReady = () => {
    if (failure) return
    for (const node of nodes) {
      if (started.has(node.name) || !node.deps.every((d) => done.has(d))) continue
      started.add(node.name)
      const p: Promise<void> = node.run(done).then(
        (status) => {
          done.set(node.name, status ?? 'succeeded')
        },
        (err: unknown) => {
          failure ??= { err }
        },
      ).finally(() => {
        running.delete(p)
        startReady()
      })
      running.add(p)
    }
  }
  startReady()
  while (running.size > 0) await Promise.race(running)
  if (failure) throw failure.err
  return done
}

/** Runs fn(0..count-1), at most `limit` at once; after a failure starts no more and throws the first error. */
export async function forEachBounded(count: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  let failure: { err: unknown } | undefined
  const worker = async () => {
    while (!failure && next < count) {
      const i = next++
      try {
        await fn(i)
      } catch (err) {
        failure ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, worker))
  if (failure) throw failure.err
}

function checkGraph(nodes: readonly DagNode[], where: string): void {
  const names = new Set<string>()
  for (const n of nodes) {
    if (names.has(n.name)) throw refuse(`failed to read ${where}: task ${n.name} appears twice`, 'give every task its own name')
    names.add(n.name)
  }
  for (const n of nodes) {
    for (const d of n.deps) {
      if (!names.has(d)) throw refuse(`failed to read ${where}: task ${n.name} depends on ${d}, which is not a task there`, 'fix the task name')
    }
  }
  // Kahn's algorithm: whatever cannot be ordered sits on a cycle.
  const indegree = new Map(nodes.map((n) => [n.name, n.deps.length]))
  const queue = nodes.filter((n) => n.deps.length === 0).map((n) => n.name)
  let ordered = 0
  while (queue.length > 0) {
    const name = queue.pop() as string
    ordered++
    for (const n of nodes) {
      if (!n.deps.includes(name)) continue
      const left = (indegree.get(n.name) ?? 0) - 1
      indegree.set(n.name, left)
      if (left === 0) queue.push(n.name)
    }
  }
  if (ordered < nodes.length) {
    const stuck = nodes.filter((n) => (indegree.get(n.name) ?? 0) > 0).map((n) => n.name)
    throw refuse(`failed to read ${where}: the tasks ${stuck.join(', ')} depend on each other in a cycle`, 'remove the cycle')
  }
}

function refuse(message: string, hint: string): AgentError {
  return new AgentError('usage', message, { hint })
}
