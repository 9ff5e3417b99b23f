import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../local/ports.ts';
import { answers, LogTail } from '../../local/process.ts';

/**
 * moto_server with a fast seeding channel (test/bench/moto-seeded.py): keys written straight into moto's
 * in-process S3 backend, ~15k keys/s instead of ~240 PUT/s over HTTP. For tests and benches that need a registry
 * of many thousand keys; the objects get moto's "now" as LastModified, like a PUT would.
 */
export interface SeededMoto {
  readonly endpoint: string;
  readonly env: Record<string, string>;
  /** Writes `keys` (the bucket must exist) with `body`, 5000 per message. */
  seed(bucket: string, keys: readonly string[], body?: string): Promise<void>;
  stop(): Promise<void>;
}

/** `script`: test/bench/moto-seeded.py (default) or moto-scale.py (plus an O(page) listing for 10⁶ keys). */
export async function startSeededMoto({ script = 'moto-seeded.py' }: { script?: string } = {}): Promise<SeededMoto> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  // Its own spawn (local/process.ts gives children no stdin): the seeding channel is the child's stdin.
  const child = spawn('python3', [join(import.meta.dirname, '../bench', script), String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('moto-seeded: could not spawn python3');
  const killOnExit = (): void => void (child.exitCode === null && child.kill('SIGKILL'));
  process.once('exit', killOnExit);
  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    child.stdin.end();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(pid, 'SIGKILL');
      await exited;
    }
  };
  const logs = new LogTail(4_000);
  child.stderr.on('data', (c: Buffer) => logs.push(c));
  const deadline = Date.now() + 30_000;
  while (!(await answers(`${endpoint}/moto-api/`).catch(() => false))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`moto-seeded (pid ${pid}) did not start: ${logs.tail()}`);
    }
    await sleep(100);
  }
  const { stdin, stdout } = child;
  let buffered = '';
  const waiters: (() => void)[] = [];
  stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith('seeded')) waiters.shift()?.();
    }
  });
  return {
    endpoint,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      S3_FORCE_PATH_STYLE: 'true',
    },
    async seed(bucket, keys, body = 'x') {
      for (let i = 0; i < keys.length; i += 5000) {
        const done = new Promise<void>((resolve) => waiters.push(resolve));
        stdin.write(`${JSON.stringify({ bucket, keys: keys.slice(i, i + 5000), body })}\n`);
        await done;
      }
    },
    stop,
  };
}
