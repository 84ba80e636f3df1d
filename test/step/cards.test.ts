// @card output lands where Metaflow's client (get_cards) and `flow.py card get` look, on the local datastore and on S3.
import { execFile } from 'node:child_process'
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agentEnv, runAgent } from '../helpers/agent-process'
import { localClientEnv } from '../helpers/metaflow-client'
import { restoreLocalMetadata, s3ClientEnv } from '../helpers/metaflow-s3'
import { MOTO_KEYS, makeBucket, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { FIXTURE_FLOWS, PYTHON, flowUrl } from '../helpers/paths'
import { useTempDir } from '../helpers/temp-dir'

const run = promisify(execFile)
const tempDir = useTempDir()
const FLOW = join(FIXTURE_FLOWS, 'card_flow.py')

// Metaflow's client finds the task's cards; each card's component data is base64 JSON inside its HTML.
const GET_CARDS = `
import base64, json, re, sys
from metaflow import Task, namespace
from metaflow.cards import get_cards
namespace(None)
out = []
for c in get_cards(Task(sys.argv[1])):
    m = re.search(r'__MF_DATA__\\[[^\\]]*\\] = "([A-Za-z0-9+/=]+)"', c.get())
    out.append({'id': c.id, 'type': c.type, 'data': base64.b64decode(m.group(1)).decode() if m else ''})
print(json.dumps(out))
`

async function cardsOf(pathspec: string, env: NodeJS.ProcessEnv, cwd?: string): Promise<{ id: string; type: string; data: string }[]> {
  const { stdout } = await run(PYTHON, ['-c', GET_CARDS, pathspec], { env: { ...env, METAFLOW_USER: 'test' }, cwd, maxBuffer: 64 * 1024 * 1024 })
  return JSON.parse(stdout) as { id: string; type: string; data: string }[]
}

function expectTheReportCard(cards: { id: string; type: string; data: string }[]) {
  expect(cards.map((c) => [c.id, c.type])).toEqual([['report', 'blank']])
  expect(cards[0]?.data).toContain('card from a KFP task')
}

describe('cards on the local datastore', () => {
  it('land under the datastore root, where they were lost with the temporary work dir before', async () => {
    const dir = tempDir()
    const r = await runAgent(['step', 'start', '--code-url', flowUrl('card_flow.py', FIXTURE_FLOWS), '--python', PYTHON, '--datastore-root', join(dir, '.metaflow'), '--run-id', 'kfp-cards'], { env: agentEnv() })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout + r.stderr).not.toMatch(/Card render failed/)
    expectTheReportCard(await cardsOf('CardFlow/kfp-cards/start/start', localClientEnv(dir)))
    // `card get` from the folder that holds .metaflow, as a user runs Metaflow's CLI.
    const { stdout } = await run(PYTHON, [FLOW, '--quiet', 'card', 'get', 'kfp-cards/start/start'], { cwd: dir, env: { ...agentEnv(), METAFLOW_USER: 'test' }, maxBuffer: 64 * 1024 * 1024 })
    expect(stdout).toMatch(/^<!DOCTYPE html>/)
    expect(stdout).toContain('__MF_DATA__')
    // Only Metaflow's own folders sit in the datastore root: the cards went to mf.cards, not a flow folder.
    expect(readdirSync(join(dir, '.metaflow')).sort()).toEqual(['CardFlow', 'mf.cards'])
  }, 120_000)

  it('land under a root set by METAFLOW_DATASTORE_SYSROOT_LOCAL too', async () => {
    const dir = tempDir()
    const elsewhere = tempDir()
    const r = await runAgent(['step', 'start', '--code-url', flowUrl('card_flow.py', FIXTURE_FLOWS), '--python', PYTHON, '--run-id', 'kfp-cards-env'], {
      env: agentEnv({ METAFLOW_DATASTORE_SYSROOT_LOCAL: dir }),
      cwd: elsewhere,
    })
    expect(r.code, r.stderr).toBe(0)
    expectTheReportCard(await cardsOf('CardFlow/kfp-cards-env/start/start', localClientEnv(dir)))
    expect(readdirSync(elsewhere)).toEqual([])
  }, 120_000)
})

describe('cards when two local roots disagree', () => {
  it('land under --datastore-root when METAFLOW_DATASTORE_SYSROOT_LOCAL names another folder, where card create failed', async () => {
    const dir = tempDir()
    const other = tempDir()
    mkdirSync(join(other, '.metaflow'))
    const r = await runAgent(['step', 'start', '--code-url', flowUrl('card_flow.py', FIXTURE_FLOWS), '--python', PYTHON, '--datastore-root', join(dir, '.metaflow'), '--run-id', 'kfp-cards-two'], {
      env: agentEnv({ METAFLOW_DATASTORE_SYSROOT_LOCAL: other }),
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout + r.stderr).not.toMatch(/Card render failed/)
    expectTheReportCard(await cardsOf('CardFlow/kfp-cards-two/start/start', localClientEnv(dir)))
    expect(readdirSync(join(other, '.metaflow'))).toEqual([])
  }, 120_000)
})

describe('cards on S3', () => {
  const BUCKET = 'cards-datastore'
  const ROOT = `s3://${BUCKET}/team/metaflow`
  let moto: Moto
  beforeAll(async () => {
    moto = await startMoto()
    await makeBucket(moto.endpoint, BUCKET)
  })
  afterAll(async () => {
    await moto?.stop()
  })

  it('land under <root>/mf.cards when the root comes from --datastore-root, where get_cards looks', async () => {
    const work = tempDir()
    const env = agentEnv({ ...MOTO_KEYS, HOME: tempDir(), AWS_DEFAULT_REGION: 'us-east-1', METAFLOW_S3_ENDPOINT_URL: moto.endpoint })
    const r = await runAgent(['step', 'start', '--code-url', flowUrl('card_flow.py', FIXTURE_FLOWS), '--python', PYTHON, '--datastore', 's3', '--datastore-root', ROOT, '--run-id', 'kfp-s3-cards'], { env, cwd: work })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout + r.stderr).not.toMatch(/Card render failed/)
    const laptop = tempDir()
    const client = s3ClientEnv(moto.endpoint, ROOT, laptop)
    await restoreLocalMetadata(client, 'CardFlow', 'kfp-s3-cards', [['_parameters', 'params'], ['start', 'start']])
    expectTheReportCard(await cardsOf('CardFlow/kfp-s3-cards/start/start', client, laptop))
  }, 240_000)
})
