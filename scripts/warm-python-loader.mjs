// The loader's first lines for `step`: start the prestarted Python (agent/step/warm-python.py) before the bundle loads, so Python's start overlaps Node's.
import { readFileSync } from 'node:fs'

/**
 * JavaScript for the top of the loader. Only with METAFLOW_KFP_WARM_PYTHON set (the image sets it
 * to its baked interpreter) and `step` as the command. The child is unreferenced until the agent
 * takes it (agent/step/warm-python.ts), so an agent that never does (a usage error, a finished
 * task) exits at once; EOF on its fd 0 then tells the Python to exit too.
 */
export function warmPythonSnippet(pythonSourcePath) {
  const source = readFileSync(pythonSourcePath, 'utf8')
  return `
  if (process.argv[2] === 'step' && process.env.METAFLOW_KFP_WARM_PYTHON && !process.argv.includes('--help')) {
    try {
      const python = process.env.METAFLOW_KFP_WARM_PYTHON
      const env = { ...process.env, PYTHONUNBUFFERED: 'x' }
      const child = require('node:child_process').spawn(python, ['-c', ${JSON.stringify(source)}], {
        stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
        detached: true,
        env,
      })
      const warm = { python, env, child, error: undefined, at: performance.now() }
      child.on('error', (err) => { warm.error = err })
      child.unref()
      for (const s of child.stdio) s && s.unref && s.unref()
      module.warmPython = warm
    } catch {
      // no prestart: the step starts Python as usual
    }
  }
`
}
