// infra/assets/prune-docker.sh (the prune SSM document's script) run for real with a fake `docker` first on the
// PATH that records every command it is given, and a temporary DOCKER_ROOT holding container logs.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parsePruneOutput } from '../../functions/purge-disk-volumes/apply.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SCRIPT = join(ROOT, 'infra', 'assets', 'prune-docker.sh');
const FAKE_BIN = join(ROOT, 'test', 'fixtures', 'fake-docker');
const MiB = 1024 * 1024;
const ANON_1 = 'a'.repeat(64);
const ANON_2 = '0123456789abcdef'.repeat(4);
const REGISTRY_ID = 'f'.repeat(64);
const OTHER_ID = 'e'.repeat(64);

let dir: string;
let dockerRoot: string;
let log: string;
let dangling: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'prune-docker-'));
  dockerRoot = join(dir, 'docker');
  log = join(dir, 'docker-calls.log');
  dangling = join(dir, 'dangling.txt');
  writeFileSync(log, '');
  writeFileSync(dangling, [ANON_1, 'registry-data', ANON_2, 'my_named_volume', ''].join('\n'));
  for (const id of [REGISTRY_ID, OTHER_ID]) mkdirSync(join(dockerRoot, 'containers', id), { recursive: true });
  // Sparse files: big by size, no real disk used.
  truncateSync(sparse(join(dockerRoot, 'containers', REGISTRY_ID, `${REGISTRY_ID}-json.log`)), 150 * MiB);
  truncateSync(sparse(join(dockerRoot, 'containers', REGISTRY_ID, `${REGISTRY_ID}-json.log.1`)), 300 * MiB);
  truncateSync(sparse(join(dockerRoot, 'containers', OTHER_ID, `${OTHER_ID}-json.log`)), 100 * MiB);
  writeFileSync(join(dockerRoot, 'containers', REGISTRY_ID, 'config.v2.json'), '{}'.padEnd(200 * 1024, ' '));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

function sparse(path: string): string {
  writeFileSync(path, '');
  return path;
}

function prune(args: string[] = [], env: Record<string, string> = {}) {
  const res = spawnSync('bash', [SCRIPT, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      ...process.env,
      PATH: `${FAKE_BIN}:${process.env.PATH}`,
      FAKE_DOCKER_LOG: log,
      FAKE_DOCKER_DANGLING: dangling,
      DOCKER_ROOT: dockerRoot,
      ...env,
    },
  });
  const calls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  return { status: res.status, stdout: res.stdout, stderr: res.stderr, calls };
}

const size = (id: string, suffix = ''): number => statSync(join(dockerRoot, 'containers', id, `${id}-json.log${suffix}`)).size;

describe('prune-docker.sh', () => {
  it('passes shellcheck', () => {
    const res = spawnSync('shellcheck', ['--severity=style', SCRIPT], { encoding: 'utf8' });
    expect(res.error).toBeUndefined();
    expect(res.stdout + res.stderr).toBe('');
    expect(res.status).toBe(0);
  });

  it('prunes images, build cache and anonymous volumes, truncates oversized logs, prints the JSON result last', () => {
    const { status, stdout, stderr, calls } = prune();
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(calls).toEqual([
      'info',
      'image prune --all --force',
      'builder prune --all --force',
      'volume ls --quiet --filter dangling=true',
      `volume rm ${ANON_1}`,
      `volume rm ${ANON_2}`,
    ]);
    const result = parsePruneOutput(stdout);
    expect(result).toBeDefined();
    expect(Number.isInteger(result!.freedBytes) && result!.freedBytes >= 0).toBe(true);
    for (const p of [result!.usedPercentBefore, result!.usedPercentAfter]) expect(p >= 0 && p <= 100).toBe(true);
    expect(stdout.trim().split('\n').at(-1)).toMatch(/^\{"freedBytes":\d+,"usedPercentBefore":\d+,"usedPercentAfter":\d+\}$/);
    expect(stdout).toContain('ok: removed 2 anonymous volume(s)');
    expect(stdout).toContain('ok: truncated 1 log(s) over 100 MiB');
    // Only the live log above the limit; exactly-at-limit and rotated files stay.
    expect(size(REGISTRY_ID)).toBe(0);
    expect(size(OTHER_ID)).toBe(100 * MiB);
    expect(size(REGISTRY_ID, '.1')).toBe(300 * MiB);
    expect(statSync(join(dockerRoot, 'containers', REGISTRY_ID, 'config.v2.json')).size).toBe(200 * 1024);
  });

  it('never stops, kills or removes a container, never prunes volumes wholesale, never removes a named volume', () => {
    const { calls } = prune();
    for (const call of calls) {
      expect(call).not.toMatch(/^(stop|kill|rm|restart|pause|container|system|compose)\b/);
      expect(call).not.toMatch(/^volume prune/);
      expect(call).not.toMatch(/registry-data|my_named_volume/);
      expect(call).not.toMatch(/^volume rm .*[^0-9a-f ]/);
    }
  });

  it('honours --max-log-mb', () => {
    const { status, calls } = prune(['--max-log-mb', '50']);
    expect(status).toBe(0);
    expect(calls).toHaveLength(6);
    expect(size(REGISTRY_ID)).toBe(0);
    expect(size(OTHER_ID)).toBe(0);
    expect(size(REGISTRY_ID, '.1')).toBe(300 * MiB);
  });

  it('with nothing to remove it still reports', () => {
    writeFileSync(dangling, 'registry-data\n');
    const { status, stdout, calls } = prune(['--max-log-mb=1000']);
    expect(status).toBe(0);
    expect(calls.filter((c) => c.startsWith('volume rm'))).toEqual([]);
    expect(stdout).toContain('ok: truncated 0 log(s) over 1000 MiB');
    expect(size(REGISTRY_ID)).toBe(150 * MiB);
    expect(parsePruneOutput(stdout)).toBeDefined();
  });

  it('a failing step: carries on with the others, prints the JSON line, exits 1', () => {
    const { status, stdout, stderr, calls } = prune([], { FAKE_DOCKER_FAIL: 'builder prune' });
    expect(status).toBe(1);
    expect(stderr).toContain('failed: builder prune');
    expect(calls).toContain(`volume rm ${ANON_1}`);
    expect(size(REGISTRY_ID)).toBe(0);
    expect(parsePruneOutput(stdout)).toBeDefined();
  });

  it.each([
    [['--max-log-mb', 'abc'], '--max-log-mb must be a whole number of MiB'],
    [['--max-log-mb', '0'], '--max-log-mb must be at least 1'],
    [['--max-log-mb'], 'usage: prune-docker.sh'],
    [['--force'], 'unknown argument: --force'],
  ])('bad usage %j: exit 2, docker never called', (args, message) => {
    const { status, stderr, calls } = prune(args);
    expect(status).toBe(2);
    expect(stderr).toContain(message);
    expect(calls).toEqual([]);
    expect(size(REGISTRY_ID)).toBe(150 * MiB);
  });

  it('docker not answering: exit 2, nothing pruned', () => {
    const { status, stderr, calls } = prune([], { FAKE_DOCKER_DOWN: '1' });
    expect(status).toBe(2);
    expect(stderr).toContain('docker is not answering');
    expect(calls).toEqual(['info']);
    expect(size(REGISTRY_ID)).toBe(150 * MiB);
  });
});
