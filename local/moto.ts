import { spawnSync } from 'node:child_process';
import { freePort } from './ports.ts';
import { answers, spawnManaged, waitUntilReady } from './process.ts';

export interface Moto {
  /** `http://127.0.0.1:PORT` */
  readonly endpoint: string;
  readonly port: number;
  readonly pid: number;
  /** The SDK environment that points a client (or a child process) at this moto. */
  readonly env: Record<string, string>;
  /** Wipes every resource (`POST /moto-api/reset`). */
  reset(): Promise<void>;
  /** Kills the server by PID and waits for it to exit. */
  stop(): Promise<void>;
  logs(): string;
}

/**
 * The SDK client configuration for a test's own client against a moto (or any local S3 stand-in at `endpoint`):
 * path-style, the emulator's region and its dummy credentials. `new S3Client(motoClientConfig(moto))`.
 */
export function motoClientConfig(target: { readonly endpoint: string }) {
  return {
    endpoint: target.endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  };
}

function motoCommand(): { command: string; args: string[] } {
  const found = spawnSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' });
  const path = found.status === 0 ? found.stdout.trim() : '';
  return path ? { command: path, args: [] } : { command: 'python3', args: ['-m', 'moto.server'] };
}

/** Starts `moto_server` on an ephemeral loopback port; resolves once `GET /moto-api/` answers (≤ 30 s). */
export async function startMoto({ timeoutMs = 30_000 } = {}): Promise<Moto> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const { command, args } = motoCommand();
  const proc = spawnManaged('moto_server', command, [...args, '-H', '127.0.0.1', '-p', String(port)]);
  await waitUntilReady(proc, () => answers(`${endpoint}/moto-api/`), { timeoutMs, what: 'answering' });

  return {
    endpoint,
    port,
    pid: proc.pid,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      S3_FORCE_PATH_STYLE: 'true',
    },
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`moto reset answered ${res.status}`);
    },
    stop: () => proc.stop(),
    logs: proc.logs,
  };
}
