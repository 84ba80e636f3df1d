// yargs' own message strings, in English and from memory: the build puts this in y18n's place (scripts/build.mjs).
//
// Why: bundled, yargs looks for translations in <working folder>/../../../locales (its ESM shim falls
// back to the working folder when import.meta.url is missing), so where the agent ran could change its
// help and errors, or crash it on a broken file there. The agent ships no translations; it reads none.
import { format } from 'node:util'

/** The part of y18n's interface yargs uses. */
export interface Strings {
  __: (str: string, ...args: unknown[]) => string
  __n: (singular: string, plural: string, quantity: number, ...args: unknown[]) => string
  setLocale: (locale: string) => void
  getLocale: () => string
  updateLocale: (table: Record<string, string | { one?: string; other?: string }>) => void
  locale: string
}

/** Strings for yargs; updateLocale (yargs' own API for a program to reword a message) still works, in memory. */
export default function englishStrings(opts: { locale?: string } = {}): Strings {
  let locale = opts.locale ?? 'en'
  const table = new Map<string, string | { one?: string; other?: string }>()
  // y18n takes a trailing callback (told when its file is written); there is no file, so it runs at once.
  const withoutCallback = (args: unknown[]): unknown[] => {
    const last = args.at(-1)
    if (typeof last !== 'function') return args
    ;(last as () => void)()
    return args.slice(0, -1)
  }
  return {
    __: (str, ...args) => {
      const own = table.get(str)
      return format(typeof own === 'string' ? own : str, ...withoutCallback(args))
    },
    __n: (singular, plural, quantity, ...args) => {
      const own = table.get(singular)
      const one = quantity === 1
      const str = (typeof own === 'object' ? (one ? own.one : own.other) : undefined) ?? (one ? singular : plural)
      // As y18n: a %d in the chosen string takes the quantity first.
      const values = str.includes('%d') ? [quantity, ...withoutCallback(args)] : withoutCallback(args)
      return format(str, ...values)
    },
    setLocale: (l) => {
      locale = l
    },
    getLocale: () => locale,
    updateLocale: (t) => {
      for (const [k, v] of Object.entries(t)) table.set(k, v)
    },
    locale,
  }
}
