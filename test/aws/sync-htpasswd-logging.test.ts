// Never log a password, a hash or the file's content: run the job with the logger at DEBUG, writing JSON to
// the real stdout/stderr (POWERTOOLS_DEV off), capture every byte, and look for each secret in it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseHtpasswd } from '../../shared/htpasswd.ts';
import { loadEvent } from '../support/events.ts';
import { htpasswdWorld } from '../support/htpasswd-world.ts';

vi.hoisted(() => {
  Object.assign(process.env, {
    POWERTOOLS_DEV: 'false',
    POWERTOOLS_LOG_LEVEL: 'DEBUG',
    HTPASSWD_PARAMETER_PATH: '/registry/users/',
    REGISTRY_BUCKET: 'registry-bucket',
    HTPASSWD_OBJECT_KEY: 'auth/htpasswd',
    ASG_NAME: 'registry-asg',
    SYNC_DOCUMENT_NAME: 'registry-htpasswd-sync',
    BCRYPT_COST: '4',
    COMMAND_WAIT: '5s',
    COMMAND_POLL_INTERVAL: '10ms',
  });
});

const { run } = await import('../../functions/sync-htpasswd/handler.ts');

const PASSWORD = 'Very-Secret-Password-42';
const BAD_PASSWORD = 'Plaintext-In-A-String-99';
const HASH = '$2y$05$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu';
const world = htpasswdWorld();
let captured = '';

beforeEach(() => {
  world.reset();
  captured = '';
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      return true;
    });
  }
  world.parameter('alice', HASH);
  world.parameter('bob', PASSWORD, 'SecureString');
  world.instance('i-1', { served: null });
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('sync-htpasswd logging', () => {
  it('logs the report but no password, hash or file content on a successful run', async () => {
    await run(loadEvent('parameter-change.json'));
    const file = world.state.object?.body ?? '';
    const bobHash = parseHtpasswd(file).get('bob') ?? '';
    expect(bobHash).toMatch(/^\$2b\$04\$/);
    expect(captured).toContain('"message":"job report"'); // the capture works
    expect(captured).toContain('"level":"INFO"');
    for (const secret of [PASSWORD, HASH, HASH.slice(7), bobHash, bobHash.slice(7), file]) expect(captured).not.toContain(secret);
  });

  it('logs nothing secret when the run is refused either', async () => {
    world.parameter('carol', BAD_PASSWORD);
    const error = (await run(loadEvent('parameter-change.json')).catch((e: unknown) => e)) as Error;
    expect(error.name).toBe('InvalidUserSetError');
    for (const text of [captured, error.message]) {
      for (const secret of [PASSWORD, BAD_PASSWORD, HASH.slice(7)]) expect(text).not.toContain(secret);
    }
  });
});
