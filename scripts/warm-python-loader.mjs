// The loader's first lines: a way to start the prestarted Python (agent/step/warm-python.py), and for `step` a start of it before the bundle loads, so Python's start overlaps Node's.
import { readFileSync } from 'node:fs'

/**
 * JavaScript for the top of the loader. `module.startWarmPython(python, listFile?)` starts one
 * (run-local keeps a few ready for its tasks); for `step`, with METAFLOW_KFP_WARM_PYTHON set (the
 * image sets it to its baked interpreter), one starts at once. A child is unreferenced until the
 * agent takes it (agent/step/warm-python.ts), so an agent that never does (a usage error, a
 * finished task) exits at once; EOF on its fd 0 then tells the Python to exit too.
 */
export function warmPythonSnippet(pythonSourcePath) {
  const source = readFileSync(pythonSourcePath, 'utf8')
  return `
  module.startWarmPython = (python, listFile) => {
    const env = { ...process.env, PYTHONUNBUFFERED: 'x' }
    const child = require('node:child_process').spawn(python, ['-c', ${JSON.stringify(source)}, ...(listFile ? [listFile] : [])], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      detached: true,
      env,
    })
    const warm = { python, env, child, error: undefined, at: performance.now() }
    child.on('error', (err) => { warm.error = err })
    child.unref()
    for (const s of child.stdio) s && s.unref && s.unref()
    return warm
  }
  if (process.argv[2] === 'step' && process.env.METAFLOW_KFP_WARM_PYTHON && !process.argv.includes('--help')) {
    try {
      module.warmPython = module.startWarmPython(process.env.METAFLOW_KFP_WARM_PYTHON)
    } catch {
      // no prestart: the step starts Python as usual
    }
  }
`
}
