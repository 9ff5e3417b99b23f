import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * `npm run demo` end to end (the README's first quick-start command, minus the build `npm test` has done):
 * it must print every job's report, pass every step, exit 0 and leave no process behind.
 */
const ROOT = join(import.meta.dirname, '..', '..');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run demo', () => {
  it('runs every job on the local fleet, exits 0 and stops everything it started', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'scripts/demo.ts')], {
      cwd: ROOT,
      env: { ...process.env, POWERTOOLS_DEV: '', POWERTOOLS_LOG_LEVEL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));

    expect(output, output).toContain('✓ demo finished: every step passed');
    expect(code, output).toBe(0);
    for (const job of [
      'purge-stale-uploads',
      'sync-htpasswd',
      'replace-unhealthy-instances',
      'purge-disk-volumes',
      'rotate-certificates',
      'collect-garbage',
    ]) {
      expect(output).toMatch(new RegExp(`^  ${job} · trigger `, 'm'));
    }
    // collect-garbage (issue 22): an image deleted, its unique layers reclaimed, a shared layer kept, a raced push restored.
    for (const line of [
      "gc/app:old's unique layer, config and manifest are reclaimed",
      'the shared layer is kept: gc/app:new pulls byte-identical',
      'the raced layer is reported restored',
      'gc/raced:v1 pulls byte-identical: the delete marker was removed at once',
    ])
      expect(output).toContain(`✓ ${line}`);
    expect(output).not.toContain('✗');
    // It ends with `npm run history`: the runs it just made, read back from the run history bucket.
    expect(output).toMatch(
      /4\. What the jobs did, from the run history[\s\S]*\$ npm run history -- --since 1h\n {2}started +job +trigger +summary/,
    );
    const pids = [...output.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(3); // moto_server and two registries
    expect(pids.filter(alive)).toEqual([]);
  }, 180_000);
});
