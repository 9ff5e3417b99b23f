import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The boot rehearsal's harness (test/integration/boot-rehearsal.test.ts): the launch template's user data as
 * the synthesized template gives it, the front that joins the sandbox to moto (with fault injection and a
 * wait-condition stand-in), and the sandboxed instance itself (test/fixtures/boot-rehearsal/sandbox.sh).
 */

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'boot-rehearsal');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties?: Record<string, Json>; Metadata?: Record<string, Json> }>;
}

/** The one launch template's `UserData` (still with its intrinsics). */
export function launchTemplateUserData(template: CfnTemplate): Json {
  const lts = Object.values(template.Resources).filter((r) => r.Type === 'AWS::EC2::LaunchTemplate');
  if (lts.length !== 1) throw new Error(`expected one AWS::EC2::LaunchTemplate, found ${lts.length}`);
  const data = lts[0]?.Properties?.LaunchTemplateData as { UserData?: Json } | undefined;
  if (data?.UserData === undefined) throw new Error('the launch template has no UserData');
  return data.UserData;
}

/** Every `Ref` target in `value` (logical ids and pseudo parameters). */
export function refsIn(value: Json, found = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) refsIn(v, found);
  else if (value && typeof value === 'object') {
    if (typeof value.Ref === 'string') found.add(value.Ref);
    for (const v of Object.values(value)) refsIn(v, found);
  }
  return found;
}

/**
 * Resolves the intrinsics CDK writes into user data: Fn::Base64 (kept as text), Fn::Join, Ref and
 * Fn::GetAtt through `lookup`. Anything else throws naming it, so a new intrinsic is never silently kept.
 */
export function resolveIntrinsics(value: Json, lookup: (ref: string, attribute?: string) => string): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const [fn, ...others] = Object.keys(value);
    const arg = fn === undefined ? undefined : value[fn];
    if (fn !== undefined && others.length === 0 && arg !== undefined) {
      if (fn === 'Fn::Base64') return resolveIntrinsics(arg, lookup);
      if (fn === 'Ref' && typeof arg === 'string') return lookup(arg);
      if (fn === 'Fn::GetAtt' && Array.isArray(arg) && typeof arg[0] === 'string' && typeof arg[1] === 'string')
        return lookup(arg[0], arg[1]);
      if (fn === 'Fn::Join' && Array.isArray(arg) && typeof arg[0] === 'string' && Array.isArray(arg[1])) {
        return arg[1].map((part) => resolveIntrinsics(part, lookup)).join(arg[0]);
      }
    }
  }
  throw new Error(`user data: cannot resolve ${JSON.stringify(value).slice(0, 200)}`);
}

/** A CloudFormation wait-condition signal as an instance sends it (PUT of a JSON body to the handle URL). */
export interface WaitSignal {
  Status: string;
  Reason?: string;
  UniqueId?: string;
  Data?: string;
}

export interface AwsFront {
  /** The wait-condition handle URL, as the instance (inside the sandbox) reaches it. */
  readonly waitHandleUrl: string;
  readonly signals: WaitSignal[];
  /** While set, Secrets Manager GetSecretValue answers 400 AccessDeniedException (a new role not yet usable). */
  failSecrets: boolean;
  readonly secretCalls: { failed: number; passed: number };
  close(): Promise<void>;
}

const WAIT_HANDLE_PATH = '/rehearsal-wait-condition-handle';

/**
 * The sandbox's AWS: an HTTP server on a unix socket that forwards to moto, records wait-condition signals,
 * and fails Secrets Manager reads on demand. `innerEndpoint` is where the sandbox's bridge listens.
 */
export async function startAwsFront(socketPath: string, motoPort: number, innerEndpoint: string): Promise<AwsFront> {
  const front: AwsFront = {
    waitHandleUrl: `${innerEndpoint}${WAIT_HANDLE_PATH}?X-Amz-Signature=rehearsal`,
    signals: [],
    failSecrets: false,
    secretCalls: { failed: 0, passed: 0 },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith(WAIT_HANDLE_PATH)) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        front.signals.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as WaitSignal);
        res.writeHead(200).end();
      });
      return;
    }
    if (req.headers['x-amz-target'] === 'secretsmanager.GetSecretValue') {
      if (front.failSecrets) {
        front.secretCalls.failed += 1;
        req.resume();
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ __type: 'AccessDeniedException', message: 'rehearsal: the role cannot read the secret yet' }));
        return;
      }
      front.secretCalls.passed += 1;
    }
    const upstream = http.request({ host: '127.0.0.1', port: motoPort, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return front;
}

/** A loopback TCP port (ephemeral) that pipes to a unix socket: how the test reaches the sandbox's :5000. */
export async function tcpToUnix(socketPath: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = net.createServer((inbound) => {
    const outbound = net.connect({ path: socketPath });
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

export interface Sandbox {
  readonly pid: number;
  /** A path as the sandboxed instance sees it (its mount namespace, through /proc/PID/root). */
  path(p: string): string;
  output(): string;
  /** Kills the sandbox's whole process group (everything the boot started) and waits for the leader. */
  stop(): Promise<void>;
}

/** Starts test/fixtures/boot-rehearsal/sandbox.sh in new mount and network namespaces, as its own process group. */
export function startSandbox(dir: string, env: Record<string, string>): Sandbox {
  const child: ChildProcess = spawn(
    'unshare',
    ['--mount', '--net', '--propagation', 'private', 'bash', join(FIXTURES, 'sandbox.sh'), dir],
    {
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  if (child.pid === undefined) throw new Error('could not spawn unshare');
  const pid = child.pid;
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid,
    // unshare execs bash in the new namespaces, so the leader's /proc root is the instance's view.
    path: (p) => `/proc/${pid}/root${p}`,
    output: () => output,
    async stop() {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        return;
      }
      await Promise.race([exited, sleep(5_000)]);
    },
  };
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await Promise.resolve()
      .then(check)
      .catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
