import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../infra/app.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

const fake = fakeFunctionsDir();
const scratch = mkdtempSync(join(tmpdir(), 'infra-context-'));
afterAll(() => {
  fake.remove();
  rmSync(scratch, { recursive: true, force: true });
});

describe('cdk-nag AwsSolutions', () => {
  it('has zero unacknowledged findings, and every acknowledgement has a reason', () => {
    const { app, outdir } = synthFleet({ domainName: 'registry.corp.internal' }, fake.dir); // throws on any finding
    const report = join(outdir, 'validation-report.json');
    if (existsSync(report)) expect(JSON.stringify(JSON.parse(readFileSync(report, 'utf8')))).not.toMatch(/"status":"failure"/);
    const acks = app.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY))
      .flatMap((m) => Object.entries(m.data as Record<string, { reason?: string } | string>));
    expect(acks.length).toBeGreaterThan(10);
    for (const [id, value] of acks) {
      const reason = typeof value === 'string' ? value : value.reason;
      expect(reason?.length ?? 0, id).toBeGreaterThan(30);
    }
  });

  it('is really on: a non-compliant resource fails synth', () => {
    const { app, stack } = createApp({
      context: { domainName: 'registry.corp.internal', functionsDir: fake.dir },
      outdir: join(scratch, 'nag-on'),
      nag: true,
    });
    new s3.Bucket(stack, 'CarelessBucket');
    expect(() => app.synth()).toThrow(/Validation failed|ERROR/);
  });
});

describe('bad context and missing inputs fail synth clearly', () => {
  it('names the bad context key when run through the cdk CLI', () => {
    const r = spawnSync(
      join('node_modules', '.bin', 'cdk'),
      [
        'synth',
        '--no-notices',
        '--quiet',
        '-o',
        join(scratch, 'cli-out'),
        '-c',
        'domainName=not_a_host',
        '-c',
        'minCapacity=0',
        '-c',
        `functionsDir=${fake.dir}`,
      ],
      { encoding: 'utf8', timeout: 90_000 },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('invalid CDK context');
    expect(r.stderr).toMatch(/context domainName: expected a DNS name/);
    expect(r.stderr).toMatch(/context minCapacity: expected a whole number from 1 to 100 \(got "0"\)/);
  });

  it('throws from createApp for a bad value', () => {
    expect(() => createApp({ context: { domainName: 'registry.corp.internal', registryImage: 'registry:latest' } })).toThrow(
      /context registryImage: expected a pinned image reference/,
    );
  });

  it('names the missing Lambda bundle', () => {
    const empty = mkdtempSync(join(scratch, 'empty-dist-'));
    expect(() => createApp({ context: { domainName: 'registry.corp.internal', functionsDir: empty } })).toThrow(
      /OpsFunction replace-unhealthy-instances: no bundle at .*replace-unhealthy-instances\/index\.mjs \(run npm run build/,
    );
  });
});
