import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** Keeps the last `maxChars` characters written to it. */
export class LogTail {
  private text = '';
  constructor(private readonly maxChars = 64_000) {}
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.maxChars) this.text = this.text.slice(-this.maxChars);
  }
  tail(chars = this.maxChars): string {
    return this.text.slice(-chars);
  }
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Combined stdout + stderr (last 64 kB). */
  logs(): string;
  /** Whether the process has exited (by itself or after stop()). */
  exited(): boolean;
  /** SIGTERM by PID, SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Spawns a long-running child (not detached, output piped to a ring buffer) that dies with the test process. */
export function spawnManaged(
  name: string,
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): ManagedProcess {
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    detached: false,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${command}`);
  const pid = child.pid;
  const logs = new LogTail();
  child.stdout?.on('data', (c: Buffer) => logs.push(c));
  child.stderr?.on('data', (c: Buffer) => logs.push(c));
  running.add(child);
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child);
      resolve();
    });
  });
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;

  const stop = async (graceMs = 5_000): Promise<void> => {
    if (exited()) return;
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (!exited()) process.kill(pid, 'SIGKILL');
    }, graceMs);
    await exit;
    clearTimeout(timer);
  };
  return { name, pid, child, logs: () => logs.tail(), exited, stop };
}

/**
 * Polls `ready` every `intervalMs` until it returns true, the process exits, or `timeoutMs` passes.
 * On failure, stops the process and throws with the tail of its output.
 */
export async function waitUntilReady(
  proc: ManagedProcess,
  ready: () => Promise<boolean>,
  { timeoutMs = 30_000, intervalMs = 100, what = 'ready' } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exited()) break;
    if (await ready().catch(() => false)) return;
    await sleep(intervalMs);
  }
  const reason = proc.exited() ? `exited with ${proc.child.exitCode ?? proc.child.signalCode}` : `not ${what} after ${timeoutMs} ms`;
  await proc.stop(1_000);
  throw new Error(`${proc.name} (pid ${proc.pid}) ${reason}; last output:\n${proc.logs().slice(-4_000)}`);
}

/** True if an HTTP GET to `url` gets any answer with one of `statuses` within 2 s. */
export async function answers(url: string, statuses: readonly number[] = [200]): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await res.body?.cancel();
  return statuses.includes(res.status);
}
