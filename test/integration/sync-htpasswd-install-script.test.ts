// infra/assets/install-htpasswd.sh, the on-instance half of sync-htpasswd (and of the boot script): its
// contract (ARCHITECTURE / PREAMBLE "On-instance contract") checked by running it for real.
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../shared/htpasswd.ts';
import { startMoto } from '../../local/moto.ts';

const SCRIPT = join(import.meta.dirname, '..', '..', 'infra', 'assets', 'install-htpasswd.sh');
const OLD = 'carol:$2y$05$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu\n';
const NEW =
  'alice:$2y$05$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu\nbob:$2y$10$k7YoaXOeJN/8rieym6UNX.1sWAh5.TKGQLuSghROTdEPJ8ZdM/PI6\n';
const MALFORMED = 'alice:$2y$05$S4plFGOIoDOwbYYn5fn8tOEw59nkmorOU7oyiOqiGYNX2FwUeFJdu\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  return new Promise((resolve) => {
    execFile('bash', [SCRIPT, ...args], { timeout: 60_000, env }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let server: Server;
let base: string;
const files = new Map<string, string>();
const meta = new Map<string, string>();
let dir: string;
const htpasswd = () => join(dir, 'htpasswd');

beforeAll(async () => {
  server = createServer((req, res) => {
    const body = files.get(req.url ?? '');
    // What S3 answers a GET with: the object's metadata as x-amz-meta-* headers (sync-htpasswd sets sha256).
    const sha = meta.get(req.url ?? '');
    res
      .writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/plain', ...(sha ? { 'x-amz-meta-sha256': sha } : {}) })
      .end(body ?? 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  files.set('/new', NEW).set('/malformed', MALFORMED).set('/empty', '').set('/torn', NEW);
  meta.set('/new', sha256Hex(NEW)).set('/torn', sha256Hex('another file')); // torn: the metadata of one publish, the body of another
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = await mkdtemp(join(tmpdir(), 'auth-'));
});

async function expectOldKept(result: Result, message: RegExp): Promise<void> {
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(message);
  expect(await readFile(htpasswd(), 'utf8')).toBe(OLD);
  expect(await readdir(dir)).toEqual(['htpasswd']); // no temp file left behind
  expect(result.stdout + result.stderr).not.toContain('$2y$');
}

describe('install-htpasswd.sh', () => {
  it('passes shellcheck', async () => {
    const result = await new Promise<Result>((resolve) => {
      execFile('shellcheck', [SCRIPT], (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }));
    });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('--report prints the current sha256, or none', async () => {
    expect(await sh(['--report', '-', dir])).toEqual({ code: 0, stdout: 'current sha256=none\n', stderr: '' });
    await writeFile(htpasswd(), OLD);
    expect(await sh(['--report', dir])).toEqual({ code: 0, stdout: `current sha256=${sha256Hex(OLD)}\n`, stderr: '' });
  });

  it('installs a verified download atomically, 0600 (the registry reads it as root), and prints previous and installed sha256', async () => {
    await writeFile(htpasswd(), OLD, { mode: 0o600 });
    const result = await sh([`${base}/new`, sha256Hex(NEW), dir]);
    expect(result).toEqual({ code: 0, stdout: `previous sha256=${sha256Hex(OLD)}\ninstalled sha256=${sha256Hex(NEW)}\n`, stderr: '' });
    expect(await readFile(htpasswd(), 'utf8')).toBe(NEW);
    expect((await stat(htpasswd())).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['htpasswd']);
  });

  it('installs into an empty directory (the boot script), with - to skip verification', async () => {
    const result = await sh([`${base}/new`, '-', dir]);
    expect(result.stdout).toBe(`previous sha256=none\ninstalled sha256=${sha256Hex(NEW)}\n`);
    expect(await readFile(htpasswd(), 'utf8')).toBe(NEW);
  });

  it('accepts an empty file (an explicitly empty user set)', async () => {
    await writeFile(htpasswd(), OLD);
    expect((await sh([`${base}/empty`, sha256Hex(''), dir])).code).toBe(0);
    expect(await readFile(htpasswd(), 'utf8')).toBe('');
  });

  it('gives the new file an mtime strictly newer than the old one, even when the clock says otherwise', async () => {
    // A coarse-timestamp filesystem, or two installs in one second, would leave the mtime equal and the
    // registry would keep the old users. Simulate it: the old file's mtime is ahead of the clock.
    await writeFile(htpasswd(), OLD);
    const ahead = Math.floor(Date.now() / 1000) + 5;
    await utimes(htpasswd(), ahead, ahead);
    expect((await sh([`${base}/new`, sha256Hex(NEW), dir])).code).toBe(0);
    expect((await stat(htpasswd())).mtimeMs).toBeGreaterThan(ahead * 1000);
    // And twice in a row, immediately.
    const first = (await stat(htpasswd())).mtimeMs;
    expect((await sh([`${base}/new`, sha256Hex(NEW), dir])).code).toBe(0);
    expect((await stat(htpasswd())).mtimeMs).toBeGreaterThan(first);
  });

  it('keeps the old file on a sha256 mismatch', async () => {
    await writeFile(htpasswd(), OLD);
    await expectOldKept(
      await sh([`${base}/new`, 'f'.repeat(64), dir]),
      /sha256 mismatch: downloaded [0-9a-f]{64}, expected f{64} \(old file kept\)/,
    );
  });

  it('keeps the old file when a line is not user:bcrypt', async () => {
    await writeFile(htpasswd(), OLD);
    await expectOldKept(await sh([`${base}/malformed`, '-', dir]), /1 line\(s\) are not user:bcrypt-hash \(old file kept\)/);
  });

  it('keeps the old file when the download fails', async () => {
    await writeFile(htpasswd(), OLD);
    await expectOldKept(await sh([`${base}/missing`, '-', dir]), /download failed \(old file kept\)/);
  });

  it('refuses bad arguments', async () => {
    expect((await sh([`${base}/new`, dir])).code).toBe(2);
    expect((await sh([])).code).toBe(2);
    expect(await sh([`${base}/new`, 'ABC', dir])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/SHA256 must be 64 lower-case hex digits or -/),
    });
    expect(await sh(['ftp://x/y', '-', dir])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/SOURCE must be s3:\/\/bucket\/key or an http\(s\):\/\/ URL/),
    });
    expect(await sh([`${base}/new`, '-', join(dir, 'nope')])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/is not a directory/),
    });
  });

  describe('--recheck (the boot script, once the registry is up): re-install if the published sha256 changed', () => {
    it('does nothing when the served file is the published one', async () => {
      await writeFile(htpasswd(), NEW);
      const before = await stat(htpasswd());
      const result = await sh(['--recheck', `${base}/new`, dir]);
      expect(result).toEqual({ code: 0, stdout: `published sha256=${sha256Hex(NEW)}\ncurrent sha256=${sha256Hex(NEW)}\n`, stderr: '' });
      expect((await stat(htpasswd())).ino).toBe(before.ino);
    });

    it('installs the published file, verified against its metadata, when the served one is older (fetched before a publish)', async () => {
      await writeFile(htpasswd(), OLD);
      const result = await sh(['--recheck', `${base}/new`, dir]);
      expect(result).toEqual({
        code: 0,
        stdout: `published sha256=${sha256Hex(NEW)}\nprevious sha256=${sha256Hex(OLD)}\ninstalled sha256=${sha256Hex(NEW)}\n`,
        stderr: '',
      });
      expect(await readFile(htpasswd(), 'utf8')).toBe(NEW);
    });

    it('keeps the old file when the object has no sha256 metadata, or a body that does not match it', async () => {
      await writeFile(htpasswd(), OLD);
      await expectOldKept(
        await sh(['--recheck', `${base}/empty`, dir]),
        /the published object has no sha256 metadata \(got ""\); file kept/,
      );
      await expectOldKept(
        await sh(['--recheck', `${base}/torn`, dir]),
        /sha256 mismatch: downloaded [0-9a-f]{64}, expected [0-9a-f]{64} \(old file kept\)/,
      );
      await expectOldKept(
        await sh(['--recheck', `${base}/missing`, dir]),
        /could not read the published sha256 of http:\/\/127\.0\.0\.1:\d+\/missing; file kept/,
      );
    });

    it('refuses bad arguments', async () => {
      expect((await sh(['--recheck', `${base}/new`])).code).toBe(2);
      expect(await sh(['--recheck', 'ftp://x/y', dir])).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/SOURCE must be s3:\/\/bucket\/key or an http\(s\):\/\/ URL/),
      });
    });

    it('reads the metadata with the real AWS CLI v2 (`aws s3api head-object`) from s3:// and installs with `aws s3 cp`, against moto', async () => {
      const moto = await startMoto();
      const bin = await mkdtemp(join(tmpdir(), 'aws-cli-'));
      const s3 = new S3Client({
        endpoint: moto.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      try {
        await s3.send(new CreateBucketCommand({ Bucket: 'auth-bucket' }));
        await s3.send(
          new PutObjectCommand({ Bucket: 'auth-bucket', Key: 'control-plane/htpasswd', Body: NEW, Metadata: { sha256: sha256Hex(NEW) } }),
        );
        // The instances' CLI (v2, /usr/bin/aws here) predates AWS_ENDPOINT_URL: a wrapper adds --endpoint-url.
        await writeFile(join(bin, 'aws'), `#!/bin/sh\nexec /usr/bin/aws --endpoint-url "${moto.endpoint}" "$@"\n`, { mode: 0o755 });
        const env = { ...process.env, ...moto.env, PATH: `${bin}:${process.env.PATH ?? ''}` };
        await writeFile(htpasswd(), OLD);
        const changed = await sh(['--recheck', 's3://auth-bucket/control-plane/htpasswd', dir], env);
        expect(changed).toMatchObject({
          code: 0,
          stdout: `published sha256=${sha256Hex(NEW)}\nprevious sha256=${sha256Hex(OLD)}\ninstalled sha256=${sha256Hex(NEW)}\n`,
        });
        expect(await readFile(htpasswd(), 'utf8')).toBe(NEW);
        expect((await stat(htpasswd())).mode & 0o777).toBe(0o600);
        const same = await sh(['--recheck', 's3://auth-bucket/control-plane/htpasswd', dir], env);
        expect(same).toMatchObject({ code: 0, stdout: `published sha256=${sha256Hex(NEW)}\ncurrent sha256=${sha256Hex(NEW)}\n` });
        // A missing object: the instance role may list the bucket, so S3 answers 404 (moto too); the file stays.
        expect(await sh(['--recheck', 's3://auth-bucket/control-plane/not-published', dir], env)).toMatchObject({
          code: 1,
          stderr: expect.stringMatching(
            /could not read the published sha256 of s3:\/\/auth-bucket\/control-plane\/not-published; file kept/,
          ),
        });
        expect(await readFile(htpasswd(), 'utf8')).toBe(NEW);
      } finally {
        s3.destroy();
        await moto.stop();
        await rm(bin, { recursive: true, force: true });
      }
    });
  });

  describe('from s3:// (the path instances use): `aws s3 cp`, here a stand-in on PATH', () => {
    // The real CLI is not on every machine (nor one new enough for AWS_ENDPOINT_URL): a stand-in `aws` serves
    // s3://BUCKET/KEY from a local directory and records how it was called, so the test checks the invocation
    // and the script's handling of its result.
    let bin: string;
    let store: string;
    let env: NodeJS.ProcessEnv;
    beforeAll(async () => {
      bin = await mkdtemp(join(tmpdir(), 'fake-aws-'));
      store = await mkdtemp(join(tmpdir(), 'fake-s3-'));
      await mkdir(join(store, 'auth-bucket', 'auth'), { recursive: true });
      await writeFile(join(store, 'auth-bucket', 'auth', 'htpasswd'), NEW);
      await writeFile(
        join(bin, 'aws'),
        [
          '#!/usr/bin/env bash',
          'printf "%s\\n" "$*" >> "$FAKE_S3/calls"',
          '[ "$1 $2 $3" = "s3 cp --only-show-errors" ] || { echo "unexpected aws call: $*" >&2; exit 2; }',
          'src="$FAKE_S3/${4#s3://}"',
          '[ -f "$src" ] || { echo "fatal error: An error occurred (404) when calling the HeadObject operation: Key not found" >&2; exit 1; }',
          'cp "$src" "$5"',
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, FAKE_S3: store };
    });
    afterAll(async () => {
      await rm(bin, { recursive: true, force: true });
      await rm(store, { recursive: true, force: true });
    });

    it('downloads with `aws s3 cp --only-show-errors SOURCE <temp file in AUTH_DIR>`, verifies and installs', async () => {
      const result = await sh(['s3://auth-bucket/auth/htpasswd', sha256Hex(NEW), dir], env);
      expect(result).toEqual({ code: 0, stdout: `previous sha256=none\ninstalled sha256=${sha256Hex(NEW)}\n`, stderr: '' });
      expect(await readFile(htpasswd(), 'utf8')).toBe(NEW);
      const calls = (await readFile(join(store, 'calls'), 'utf8')).trim().split('\n');
      expect(calls.at(-1)).toMatch(new RegExp(`^s3 cp --only-show-errors s3://auth-bucket/auth/htpasswd ${dir}/\\.htpasswd\\.\\w+$`));
    });

    it('keeps the old file when the object is missing', async () => {
      await writeFile(htpasswd(), OLD);
      await expectOldKept(
        await sh(['s3://auth-bucket/nope', '-', dir], env),
        /download of s3:\/\/auth-bucket\/nope failed \(old file kept\)/,
      );
    });
  });
});
