import { writeFileSync } from 'node:fs'
import { createServer, request as httpRequest } from 'node:http'
import type { Server } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProxyRequestHandler, proxyConfigured } from '../../agent/aws/aws-http'
import { stsAssumer } from '../../agent/aws/credentials'
import { S3Store } from '../../agent/aws/s3-store'
import { MOTO_KEYS, makeBucket, startMoto } from '../helpers/moto'
import type { Moto } from '../helpers/moto'
import { useTempDir } from '../helpers/temp-dir'

const tempDir = useTempDir()
let moto: Moto
let proxy: Server
let proxyUrl: string
let proxied = 0
const creds = async () => ({ accessKeyId: MOTO_KEYS.AWS_ACCESS_KEY_ID, secretAccessKey: MOTO_KEYS.AWS_SECRET_ACCESS_KEY, sessionToken: 't', expiration: new Date(Date.now() + 3_600_000) })

beforeAll(async () => {
  moto = await startMoto()
  await makeBucket(moto.endpoint, 'proxied')
  // A real forward proxy on loopback: CONNECT tunnels and absolute-form requests, counted.
  proxy = createServer((req, res) => {
    proxied++
    const up = httpRequest(req.url as string, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers)
      r.pipe(res)
    })
    req.pipe(up)
  })
  proxy.on('connect', (req, socket, head) => {
    proxied++
    const [host, port] = (req.url as string).split(':')
    const up = connect(Number(port), host as string, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      up.write(head)
      up.pipe(socket)
      socket.pipe(up)
    })
    up.on('error', () => socket.destroy())
    socket.on('error', () => up.destroy())
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()))
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
})
afterAll(async () => {
  proxy?.closeAllConnections()
  await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()))
  await moto?.stop()
})

describe('ProxyRequestHandler', () => {
  it('is used only when a proxy variable is set', () => {
    expect(proxyConfigured({})).toBe(false)
    expect(proxyConfigured({ https_proxy: 'http://p:3128' })).toBe(true)
  })

  it("carries the agent's S3 calls through HTTP_PROXY, bodies and errors included", async () => {
    const before = proxied
    const env = { HTTP_PROXY: proxyUrl, NO_PROXY: '' }
    const store = await S3Store.open('s3://proxied/root', { region: 'us-east-1', endpoint: moto.endpoint, credentials: creds, maxAttempts: 2, requestHandler: () => new ProxyRequestHandler(env) })
    try {
      const f = join(tempDir(), 'log')
      writeFileSync(f, 'line\n'.repeat(50_000))
      await store.putFile('F/r/s/t/0.task_stdout.log', f)
      await store.putBytes('F/data/ab/key with space', Buffer.from('x'), { cas_raw: true })
      expect((await store.read('F/r/s/t/0.task_stdout.log'))?.length).toBe(250_000)
      expect((await store.read('F/data/ab/key with space'))?.toString()).toBe('x')
      expect(await store.read('F/missing')).toBeUndefined()
      expect(await store.exists('F/missing')).toBe(false)
    } finally {
      store.close()
    }
    expect(proxied).toBeGreaterThan(before)
  })

  it('carries STS AssumeRole through the proxy', async () => {
    const before = proxied
    const env = { ...MOTO_KEYS, AWS_ENDPOINT_URL_STS: moto.endpoint, http_proxy: proxyUrl }
    const assume = await stsAssumer({ roleArn: 'arn:aws:iam::123456789012:role/r', sessionName: 'proxied', durationSeconds: 900, region: 'us-east-1', env, requestHandler: new ProxyRequestHandler(env) })
    expect((await assume()).accessKeyId).toMatch(/^ASIA/)
    expect(proxied).toBeGreaterThan(before)
  })

  it('goes direct for hosts in NO_PROXY', async () => {
    const before = proxied
    const env = { HTTP_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' }
    const store = await S3Store.open('s3://proxied/root', { region: 'us-east-1', endpoint: moto.endpoint, credentials: creds, maxAttempts: 1, requestHandler: () => new ProxyRequestHandler(env) })
    expect(await store.read('F/missing')).toBeUndefined()
    store.close()
    expect(proxied).toBe(before)
  })
})
