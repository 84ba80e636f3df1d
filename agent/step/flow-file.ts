// Finds the flow's class name in its source, so the agent knows the datastore prefix without starting Python.

/**
 * The FlowSpec subclass that the file runs: the class named in the `__main__` guard when
 * there is one, else the only class that derives from FlowSpec. Undefined when unsure.
 */
export function findFlowName(source: string): string | undefined {
  const main = /if\s+__name__\s*==\s*["']__main__["']\s*:\s*\n\s+([A-Za-z_]\w*)\s*\(/m.exec(source)
  if (main?.[1]) return main[1]
  const flows = [...source.matchAll(/^class\s+([A-Za-z_]\w*)\s*\(([^)]*)\)\s*:/gm)]
    .filter((m) => /\bFlowSpec\b/.test(m[2] ?? ''))
    .map((m) => m[1] as string)
  return flows.length === 1 ? flows[0] : undefined
}
