// A step on S3 (moto's server on loopback, under an assumed role): each stage of the agent timed, and the total against the same step run bare.
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { bakeLikeTheImage, helloFlow, parseTimings, runAgent } from './lib.mjs'

const BUCKET = 'bench'
const ROOT = `s3://${BUCKET}/metaflow`
const ROLE = 'arn:aws:iam::123456789012:role/bench-role'
// moto accepts any keys; these are dummies.
const KEYS = { AWS_ACCESS_KEY_ID: 'AKIDBENCHKEY00000000', AWS_SECRET_ACCESS_KEY: 'bench-secret', AWS_DEFAULT_REGION: 'us-east-1' }
const STAGES = ['node', 'load', 'args', 'modules', 'aws', 'fetch', 'runtime', 'credentials', 'attempts', 'step', 'metadata', 'record', 'outputs', 'logs', 'cleanup']
const LABEL = { aws: 'assume role', attempts: 'record read (attempts)', record: 'record read (beside the metadata save)', outputs: 'outputs', metadata: 'metadata save', logs: 'log save' }

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => res(port))
    })
  })
}

async function startMoto(ctx) {
  const port = await freePort()
  // moto logs every request; to a file, because the agent runs through spawnSync, which blocks the
  // event loop: a pipe nobody drains fills up and stalls moto (the 4th step timed out after 30 s).
  const logFile = join(ctx.work, 'moto.log')
  const fd = openSync(logFile, 'w')
  const child = spawn(join(ctx.venvBin, 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], { env: ctx.env, stdio: ['ignore', 'ignore', fd] })
  closeSync(fd)
  const tail = () => readFileSync(logFile, 'utf8').slice(-4000)
  const endpoint = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited ${child.exitCode}: ${tail()}`)
    try {
      if ((await fetch(`${endpoint}/moto-api/data.json`)).ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`moto_server did not answer within 30 s: ${tail()}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { endpoint, stop: () => new Promise((r) => { if (child.exitCode !== null) return r(); child.once('exit', r); child.kill('SIGTERM') }) }
}

export default async function s3(ctx) {
  // As the image runs it: the code cache beside the agent, the runtime marker (with boto3) in the venv.
  const image = bakeLikeTheImage(ctx)
  const img = { ...ctx, agent: image.agent, python: image.python }
  const moto = await startMoto(ctx)
  try {
    const flow = helloFlow(ctx)
    const home = join(ctx.work, 'home')
    mkdirSync(home)
    const s3env = { ...ctx.env, ...KEYS, HOME: home, METAFLOW_S3_ENDPOINT_URL: moto.endpoint, METAFLOW_DATASTORE_SYSROOT_S3: ROOT, METAFLOW_DEFAULT_DATASTORE: 's3' }
    // The bucket and the code, with boto3 from the same venv.
    ctx.timed(img.python, ['-c', 'import boto3, sys; s3 = boto3.client("s3", endpoint_url=sys.argv[1]); s3.create_bucket(Bucket=sys.argv[2]); s3.upload_file(sys.argv[3], sys.argv[2], "code/hello_flow.py")', moto.endpoint, BUCKET, flow], { env: s3env })
    ctx.timed(img.python, [flow, '--quiet', '--datastore=s3', 'init', '--run-id', 'b', '--task-id', 'params'], { env: s3env, cwd: ctx.work })
    const agentEnv = { ...s3env, METAFLOW_AWS_ARN: ROLE, AWS_ENDPOINT_URL_STS: moto.endpoint }
    const bareArgs = (id) => [flow, '--quiet', '--no-pylint', '--datastore=s3', 'step', 'start', '--run-id', 'b', '--task-id', id, '--input-paths', 'b/_parameters/params']
    const agentArgs = (id) => ['step', 'start', '--code-url', `s3://${BUCKET}/code/hello_flow.py`, '--python', img.python, '--run-id', 'b', '--task-id', id, '--input-paths', 'b/_parameters/params', '--output-dir', join(ctx.work, 'out', id)]
    ctx.timed(img.python, bareArgs('warm-bare'), { env: s3env, cwd: ctx.work })
    runAgent(img, agentArgs('warm-agent'), agentEnv, { cwd: ctx.work })
    const rounds = Math.min(ctx.rounds, 5)
    const bare = []
    const agent = []
    const stages = []
    for (let i = 0; i < rounds; i++) {
      const pair = [
        () => bare.push(ctx.timed(img.python, bareArgs(`bare-${i}`), { env: s3env, cwd: ctx.work })),
        () => {
          const r = runAgent(img, agentArgs(`agent-${i}`), { ...agentEnv, METAFLOW_KFP_TIMINGS: '1' }, { cwd: ctx.work })
          agent.push(r.ms)
          stages.push(parseTimings(r.stderr))
        },
      ]
      if (i % 2) pair.reverse()
      for (const f of pair) f()
    }
    const overhead = ctx.median(agent.map((a, i) => a - bare[i]))
    const mb = ctx.median(bare)
    const ma = ctx.median(agent)
    const med = (n) => ctx.median(stages.map((s) => s[n]?.ms ?? 0))
    const parts = STAGES.filter((n) => stages.some((s) => s[n])).map((n) => `${LABEL[n] ?? n} ${med(n).toFixed(0)}`)
    const stepStart = ctx.median(stages.map((s) => s.step.start))
    const after = ctx.median(stages.map((s) => s.total.ms - (s.step.start + s.step.ms)))
    return [
      {
        what: `a step on S3 (moto on loopback) under an assumed role, as the image runs it, against the same step run bare (median of ${rounds} alternated pairs)`,
        measured: `+${overhead.toFixed(0)} ms (agent ${ma.toFixed(0)} ms, bare ${mb.toFixed(0)} ms, ${(ma / mb).toFixed(2)}x)`,
        goal: 'stages timed and overlapped; no goal of its own',
        ok: null,
      },
      {
        what: 'where a step on S3 spends its time, the agent\'s stages (median ms; fetch overlaps the runtime check)',
        measured: `${parts.join(', ')}; the step starts at ${stepStart.toFixed(0)} ms, ${after.toFixed(0)} ms after it ends`,
        goal: 'breakdown',
        ok: null,
      },
    ]
  } finally {
    await moto.stop()
  }
}
