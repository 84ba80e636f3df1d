// The credential sent to KFP: a bearer token (flag or KFP_API_TOKEN), the in-cluster token file, and/or a login cookie.
import { readFile } from 'node:fs/promises'
import { AgentError } from '../errors.js'

/** Where the kfp SDK and Kubeflow's PodDefault put the projected ServiceAccount token. */
export const DEFAULT_TOKEN_PATH = '/var/run/secrets/kubeflow/pipelines/token'

export interface Credential {
  /** what was tried, for messages; never the secret itself */
  describe: string
  /** what to set when the server refused it */
  advice: string
  /** the headers of one request; the token file is read again each time (the kubelet rotates it) */
  headers(): Promise<Record<string, string>>
  /** the secret strings, so a server message that echoes one can be masked */
  secrets(): string[]
}

export interface AuthInputs {
  token?: { value: string; from: string } | undefined
  /** the token file and whether it was named (else the default path, used only when it exists) */
  tokenFile: { path: string; named: boolean; from: string }
  cookie?: string | undefined
}

export async function resolveCredential(a: AuthInputs): Promise<Credential> {
  const parts: string[] = []
  const advice = 'give a token with --token or KFP_API_TOKEN, a token file with KF_PIPELINES_SA_TOKEN_PATH, or a login cookie with --cookie NAME=VALUE'
  let tokenOf: (() => Promise<string>) | undefined
  const seen: string[] = []
  if (a.token) {
    const v = a.token.value.trim()
    tokenOf = async () => v
    parts.push(`the bearer token from ${a.token.from}`)
  } else if (a.tokenFile.named || (await exists(a.tokenFile.path))) {
    const path = a.tokenFile.path
    tokenOf = async () => {
      try {
        return (await readFile(path, 'utf8')).trim()
      } catch (err) {
        throw new AgentError('credentials', `failed to read the KFP token file ${path}`, { cause: err, hint: 'check KF_PIPELINES_SA_TOKEN_PATH, or give --token' })
      }
    }
    parts.push(`the token file ${path} (${a.tokenFile.from})`)
  }
  if (a.cookie !== undefined) {
    const name = a.cookie.slice(0, a.cookie.indexOf('='))
    parts.push(`the cookie ${name} (--cookie)`)
    seen.push(a.cookie.slice(a.cookie.indexOf('=') + 1))
  }
  return {
    describe: parts.length ? parts.join(' and ') : 'no credential',
    advice,
    async headers() {
      const h: Record<string, string> = {}
      if (tokenOf) {
        const t = await tokenOf()
        if (t) {
          seen.push(t)
          h.authorization = `Bearer ${t}`
        }
      }
      if (a.cookie !== undefined) h.cookie = a.cookie
      return h
    },
    secrets: () => seen.filter((s) => s.length >= 4),
  }
}

/** `--cookie name=value`, as Kubeflow's authservice_session or oauth2_proxy_kubeflow. */
export function checkCookie(text: string): string {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+=[^;\s]+$/.test(text)) {
    throw new AgentError('usage', 'failed to accept --cookie: expected NAME=VALUE, one cookie', { hint: 'e.g. --cookie oauth2_proxy_kubeflow=VALUE from your browser' })
  }
  return text
}

async function exists(path: string): Promise<boolean> {
  try {
    await readFile(path)
    return true
  } catch {
    return false
  }
}
