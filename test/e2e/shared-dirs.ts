// One shared folder per test on demand, all removed after the file's tests (call inside a describe).
import { afterAll } from 'vitest'
import { sharedDir } from './cluster'
import type { SharedDir } from './cluster'

/** Registers the cleanup and returns a function that makes a fresh shared folder each call. */
export function useSharedDirs(): () => SharedDir {
  const dirs: SharedDir[] = []
  afterAll(() => dirs.forEach((d) => d.remove()))
  return () => {
    const d = sharedDir()
    dirs.push(d)
    return d
  }
}
