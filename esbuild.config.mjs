// Bundles every functions/<job>/handler.ts into dist/functions/<job>/index.mjs (ARCHITECTURE §1).
// One esbuild call per job, no code splitting: no job can share module state with another through the bundle.
// The AWS SDK is bundled (not taken from the runtime): faster cold start and a pinned, tested version.
import { build } from 'esbuild';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = import.meta.dirname;
const jobs = readdirSync(join(root, 'functions'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, 'functions', d.name, 'handler.ts')))
  .map((d) => d.name)
  .sort();
// A job may have a second Lambda: functions/<job>/<name>-handler.ts → dist/functions/<job>-<name>/index.mjs
// (purge-stale-uploads' inventory mode), bundled on its own like every job.
const entries = jobs.flatMap((job) => [
  { bundle: job, entry: join(root, 'functions', job, 'handler.ts') },
  ...readdirSync(join(root, 'functions', job))
    .filter((f) => /^[a-z0-9-]+-handler\.ts$/.test(f))
    .sort()
    .map((f) => ({ bundle: `${job}-${f.slice(0, -'-handler.ts'.length)}`, entry: join(root, 'functions', job, f) })),
]);

rmSync(join(root, 'dist', 'functions'), { recursive: true, force: true });

const rows = [];
for (const { bundle: job, entry } of entries) {
  const outdir = join(root, 'dist', 'functions', job);
  const result = await build({
    entryPoints: { index: entry },
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    minify: true,
    sourcemap: true,
    metafile: true,
    legalComments: 'none',
    mainFields: ['module', 'main'],
    // Some CommonJS dependencies call require() for Node built-ins; give the ESM bundle one.
    banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
    logLevel: 'warning',
  });
  writeFileSync(join(outdir, 'meta.json'), JSON.stringify(result.metafile));
  const bytes = result.metafile.outputs[Object.keys(result.metafile.outputs).find((f) => f.endsWith('index.mjs'))].bytes;
  rows.push([job, bytes]);
}

if (rows.length === 0) {
  console.log('no functions/<job>/handler.ts to bundle yet');
} else {
  const width = Math.max(...rows.map(([job]) => job.length));
  console.log(`${'bundle'.padEnd(width)}  size`);
  for (const [job, bytes] of rows) console.log(`${job.padEnd(width)}  ${(bytes / 1024).toFixed(1).padStart(7)} KiB`);
}
