// Typed reads of a parsed template for run-local: each wrong shape or unknown key is one usage error naming where.
import { AgentError } from '../errors.js'

export type Obj = Record<string, unknown>

/** A construct run-local does not run, named in the message. */
export function refuse(construct: string, hint: string): AgentError {
  return new AgentError('usage', `failed to run the template locally: run-local does not support ${construct}`, { hint })
}

/** Refuses any key outside `allowed`, so an unsupported construct is never silently ignored. */
export function onlyKeys(o: Obj, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw refuse(`${k} in ${where}`, `run-local understands ${allowed.join(', ')} there`)
  }
}

/** Readers whose errors name the document (`the workflow`, `the pipeline`) and its example templates. */
export function shapeReaders(document: string, examples: string) {
  const bad = (where: string, what: string, hint = `compare it with ${examples}`) =>
    new AgentError('usage', `failed to read ${document}: ${where} ${what}`, { hint })
  return {
    obj(v: unknown, where: string): Obj {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(where, 'is missing or not a mapping')
      return v as Obj
    },
    list(v: unknown, where: string): unknown[] {
      if (!Array.isArray(v)) throw bad(where, 'is missing or not a list')
      return v
    },
    str(v: unknown, where: string): string {
      if (typeof v !== 'string') throw bad(where, 'is missing or not a string')
      return v
    },
    strList(v: unknown, where: string): string[] {
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(where, 'is not a list of strings', 'quote numbers in command and args')
      return v as string[]
    },
  }
}
