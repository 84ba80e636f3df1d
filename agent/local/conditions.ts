// Evaluates the small condition languages run-local meets: KFP's trigger conditions (the CEL the kfp SDK writes for dsl.If), Argo's when and Argo's depends.
import { AgentError } from '../errors.js'

type Value = string | number | boolean

/** How the words of one language read: returns the value of a word (and what follows it), or undefined to refuse it. */
type WordReader = (word: string, p: Parser) => Value | undefined

const TOKEN = /\s*(?:('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(&&|\|\||==|!=|<=|>=|[()[\]!<>,])|([A-Za-z0-9_][A-Za-z0-9_.-]*))/y

class Parser {
  private tokens: { kind: 'str' | 'op' | 'word'; text: string }[] = []
  private i = 0

  constructor(
    readonly text: string,
    private readonly readWord: WordReader,
    private readonly refuse: (what: string) => AgentError,
  ) {
    TOKEN.lastIndex = 0
    let at = 0
    while (at < text.length) {
      if (text.slice(at).trim() === '') break
      TOKEN.lastIndex = at
      const m = TOKEN.exec(text)
      if (!m) throw this.refuse(`${JSON.stringify(text.slice(at).trim().slice(0, 20))}`)
      at = TOKEN.lastIndex
      if (m[1] !== undefined) this.tokens.push({ kind: 'str', text: m[1].slice(1, -1).replace(/\\(.)/g, '$1') })
      else if (m[2] !== undefined) this.tokens.push({ kind: 'op', text: m[2] })
      else this.tokens.push({ kind: 'word', text: m[3] as string })
    }
  }

  evaluate(): Value {
    const v = this.or()
    if (this.i < this.tokens.length) throw this.refuse(`${JSON.stringify(this.tokens[this.i]?.text)} after a whole expression`)
    return v
  }

  peek(text: string): boolean {
    const t = this.tokens[this.i]
    return t !== undefined && t.kind === 'op' && t.text === text
  }

  expect(text: string): void {
    if (!this.peek(text)) throw this.refuse(`a missing ${text}`)
    this.i++
  }

  /** The next token as a string literal. */
  string(): string {
    const t = this.tokens[this.i]
    if (t?.kind !== 'str') throw this.refuse('a missing string literal')
    this.i++
    return t.text
  }

  or(): Value {
    let v = this.and()
    while (this.peek('||')) {
      this.i++
      const r = this.and()
      v = truthy(v, this) || truthy(r, this)
    }
    return v
  }

  private and(): Value {
    let v = this.unary()
    while (this.peek('&&')) {
      this.i++
      const r = this.unary()
      v = truthy(v, this) && truthy(r, this)
    }
    return v
  }

  private unary(): Value {
    if (this.peek('!')) {
      this.i++
      return !truthy(this.unary(), this)
    }
    return this.compare()
  }

  private compare(): Value {
    const left = this.primary()
    const t = this.tokens[this.i]
    if (t?.kind !== 'op' || !['==', '!=', '<', '<=', '>', '>='].includes(t.text)) return left
    this.i++
    const right = this.primary()
    switch (t.text) {
      case '==':
        return left === right
      case '!=':
        return left !== right
      default: {
        if (typeof left !== typeof right || typeof left === 'boolean') throw this.refuse(`${t.text} between ${JSON.stringify(left)} and ${JSON.stringify(right)}`)
        const [a, b] = [left as string | number, right as string | number]
        return t.text === '<' ? a < b : t.text === '<=' ? a <= b : t.text === '>' ? a > b : a >= b
      }
    }
  }

  primary(): Value {
    const t = this.tokens[this.i]
    if (t === undefined) throw this.refuse('an expression that ends too early')
    this.i++
    if (t.kind === 'str') return t.text
    if (t.kind === 'op') {
      if (t.text !== '(') throw this.refuse(`${JSON.stringify(t.text)} where a value belongs`)
      const v = this.or()
      this.expect(')')
      return v
    }
    if (t.text === 'true' || t.text === 'false') return t.text === 'true'
    if (/^-?\d+(\.\d+)?$/.test(t.text)) return Number(t.text)
    const v = this.readWord(t.text, this)
    if (v === undefined) throw this.refuse(JSON.stringify(t.text))
    return v
  }
}

function truthy(v: Value, p: Parser): boolean {
  if (typeof v !== 'boolean') throw new AgentError('usage', `failed to evaluate ${JSON.stringify(p.text)}: ${JSON.stringify(v)} is not true or false`, { hint: 'compare values with == or !=' })
  return v
}

function asBool(v: Value, text: string, where: string): boolean {
  if (typeof v !== 'boolean') throw new AgentError('usage', `failed to evaluate ${where} ${JSON.stringify(text)}: it gives ${JSON.stringify(v)}, not true or false`, { hint: 'write a comparison' })
  return v
}

const unsupported = (where: string, text: string, hint: string) => (what: string) =>
  new AgentError('usage', `failed to run ${where}: run-local does not evaluate ${what} in ${JSON.stringify(text)}`, { hint })

/**
 * A KFP triggerPolicy.condition, as KFP's driver evaluates it (CEL over the task's resolved
 * inputs): the subset the kfp SDK writes for dsl.If/Elif/Else, i.e. inputs.parameter_values['x']
 * compared with literals, int()/double()/string() of it, and !, &&, ||.
 */
export function kfpCondition(text: string, inputs: Readonly<Record<string, unknown>>, where: string): boolean {
  const refuse = unsupported(where, text, "write conditions as the kfp SDK does: inputs.parameter_values['x'] == 'v', with !, && and ||")
  const read: WordReader = (word, p) => {
    if (word === 'inputs.parameter_values') {
      p.expect('[')
      const name = p.string()
      p.expect(']')
      if (!(name in inputs)) throw new AgentError('usage', `failed to run ${where}: its condition reads input ${name}, which the task does not have`, { hint: 'pass it in the task\'s inputs.parameters' })
      const v = inputs[name]
      return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : JSON.stringify(v)
    }
    if (word === 'int' || word === 'double' || word === 'string') {
      p.expect('(')
      const v = p.or()
      p.expect(')')
      if (word === 'string') return String(v)
      const n = Number(v)
      if (!Number.isFinite(n)) throw new AgentError('usage', `failed to run ${where}: ${word}(${JSON.stringify(v)}) in its condition is not a number`)
      return word === 'int' ? Math.trunc(n) : n
    }
    return undefined
  }
  return asBool(new Parser(text, read, refuse).evaluate(), text, `the condition of ${where}`)
}

/** An Argo when, after its {{…}} were filled: comparisons of quoted or bare words with !, && and ||. */
export function argoWhen(text: string, where: string): boolean {
  const refuse = unsupported(where, text, "write when as 'a' == 'b', with !, && and ||")
  // Bare words compare as text, as Argo's examples write them (heads == heads).
  return asBool(new Parser(text, (word) => word, refuse).evaluate(), text, `the when of ${where}`)
}

export type ArgoTaskResult = 'Succeeded' | 'Skipped' | 'Omitted'

const RESULTS = ['Succeeded', 'Failed', 'Errored', 'Skipped', 'Omitted', 'Daemoned', 'AnySucceeded', 'AllFailed']

/** The tasks an Argo depends names. */
export function dependsTasks(text: string): string[] {
  const names = new Set<string>()
  for (const m of text.matchAll(/[A-Za-z0-9_][A-Za-z0-9_.-]*/g)) {
    const word = m[0]
    const dot = word.lastIndexOf('.')
    names.add(dot > 0 && RESULTS.includes(word.slice(dot + 1)) ? word.slice(0, dot) : word)
  }
  return [...names]
}

/** Argo's depends over how its tasks ended (a bare name means Succeeded, Skipped or Daemoned). */
export function argoDepends(text: string, results: ReadonlyMap<string, ArgoTaskResult>, where: string): boolean {
  const refuse = unsupported(where, text, 'write depends as task.Succeeded (or .Skipped, .Omitted, .Failed) with !, && and ||')
  const read: WordReader = (word) => {
    const dot = word.lastIndexOf('.')
    const [task, result] = dot > 0 && RESULTS.includes(word.slice(dot + 1)) ? [word.slice(0, dot), word.slice(dot + 1)] : [word, '']
    const r = results.get(task)
    if (r === undefined) return undefined
    if (result === '') return r === 'Succeeded' || r === 'Skipped'
    // run-local stops at the first failure, so no task it asks about has failed.
    if (result === 'AnySucceeded') return r === 'Succeeded'
    return r === result
  }
  return asBool(new Parser(text, read, refuse).evaluate(), text, `the depends of ${where}`)
}
