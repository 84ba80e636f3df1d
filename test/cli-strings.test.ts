// The bundle's stand-in for y18n says what yargs' own y18n says in English, without reading a file.
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import englishStrings from '../agent/cli-strings'
import { REPO } from './helpers/paths'

// The y18n yargs itself loads, as the reference: resolved from yargs' own folder.
const fromYargs = createRequire(createRequire(join(REPO, 'package.json')).resolve('yargs/package.json'))
const y18n = fromYargs('y18n') as (opts: { directory: string; updateFiles: boolean; locale?: string }) => ReturnType<typeof englishStrings>
const empty = mkdtempSync(join(tmpdir(), 'mfkfp-no-locales-'))
afterAll(() => rmSync(empty, { recursive: true, force: true }))

describe('cli-strings', () => {
  // Calls as yargs makes them (build/lib/usage.js, validation.js), with the shapes of their arguments.
  const singles: [string, ...unknown[]][] = [
    ['Show help'],
    ['Options:'],
    ['Not enough arguments following: %s', 'code-url'],
    ['Invalid values:'],
    ['Argument: %s, Given: %s, Choices: %s', 'form', '"x"', '"kfp", "argo"'],
    ['Arguments %s and %s are mutually exclusive', 'a', 'b'],
    ['%s', 'plain'],
    ['no placeholder', 'extra'],
  ]
  const plurals: [string, string, number, ...unknown[]][] = [
    ['Unknown argument: %s', 'Unknown arguments: %s', 1, 'bogus'],
    ['Unknown argument: %s', 'Unknown arguments: %s', 2, 'a, b'],
    ['Missing required argument: %s', 'Missing required arguments: %s', 3, 'code-url, run-id, step'],
    ['Not enough non-option arguments: got %s, need at least %s', 'Not enough non-option arguments: got %s, need at least %s', 0, '0', '1'],
    ['%d thing', '%d things', 1],
    ['%d thing of %s', '%d things of %s', 4, 'five'],
  ]

  it("formats every message as yargs' own y18n does with no translation files", () => {
    const ours = englishStrings()
    const theirs = y18n({ directory: empty, updateFiles: false })
    for (const [str, ...args] of singles) expect(ours.__(str, ...args)).toBe(theirs.__(str, ...args))
    for (const [one, other, n, ...args] of plurals) expect(ours.__n(one, other, n, ...args)).toBe(theirs.__n(one, other, n, ...args))
  })

  it("rewords a message given through yargs' updateLocale, as y18n does, and keeps the locale it is told", () => {
    const ours = englishStrings()
    const theirs = y18n({ directory: empty, updateFiles: false })
    const table = { 'Show help': 'Print this help', 'Unknown argument: %s': { one: 'Not an option: %s', other: 'Not options: %s' } }
    ours.updateLocale(table)
    theirs.updateLocale(table)
    expect(ours.__('Show help')).toBe('Print this help')
    expect(ours.__('Show help')).toBe(theirs.__('Show help'))
    for (const n of [1, 2]) expect(ours.__n('Unknown argument: %s', 'Unknown arguments: %s', n, 'x')).toBe(theirs.__n('Unknown argument: %s', 'Unknown arguments: %s', n, 'x'))
    ours.setLocale('de_DE')
    expect(ours.getLocale()).toBe('de_DE')
    expect(ours.__('Options:')).toBe('Options:')
  })

  it("runs y18n's trailing callback at once and leaves it out of the text", () => {
    let called = 0
    const ours = englishStrings()
    expect(ours.__('Show %s', 'help', () => called++)).toBe('Show help')
    expect(ours.__n('%d file', '%d files', 2, () => called++)).toBe('2 files')
    expect(called).toBe(2)
  })
})
