import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { ALL_JOBS } from '../../infra/config.ts';
import { createApp } from '../../infra/app.ts';
import type { CreatedApp } from '../../infra/app.ts';

/** A fake `dist/functions`: one tiny index.mjs per job (the job bundles may not exist yet). */
export function fakeFunctionsDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fake-dist-'));
  for (const job of ALL_JOBS) {
    mkdirSync(join(dir, job));
    writeFileSync(join(dir, job, 'index.mjs'), `export const handler = async () => ({ job: '${job}' });\n`);
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Synthesised extends CreatedApp {
  template: Template;
  outdir: string;
}

/** Synthesises the app with cdk-nag on (throws "Validation failed" on any unacknowledged finding). */
export function synthFleet(context: Record<string, unknown>, functionsDir: string): Synthesised {
  const outdir = mkdtempSync(join(tmpdir(), 'cdk-out-'));
  const created = createApp({ context: { functionsDir, ...context }, outdir, nag: true });
  const assembly = created.app.synth();
  const template = Template.fromJSON(assembly.getStackArtifact(created.stack.artifactId).template as Record<string, unknown>);
  return { ...created, template, outdir };
}
