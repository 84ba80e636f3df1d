// Where the tests find the built agent, the project's Python and the example flows.
import { resolve } from 'node:path'

export const REPO = resolve(__dirname, '..', '..')
export const AGENT = resolve(REPO, 'dist', 'metaflow-kfp')
export const VENV_BIN = resolve(REPO, '.venv', 'bin')
export const PYTHON = resolve(VENV_BIN, 'python')
export const FLOWS = resolve(REPO, 'pipeline-templates', 'flows')
export const FIXTURE_FLOWS = resolve(REPO, 'test', 'fixtures', 'flows')

export function flowUrl(file: string, dir = FLOWS): string {
  return `file://${resolve(dir, file)}`
}
