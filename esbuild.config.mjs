// Bundles every functions/<job>/handler.ts into dist/functions/<job>/index.mjs (ARCHITECTURE §1).
// One esbuild call per job, no code splitting: no job can share module state with another through the bundle.
// The AWS SDK is bundled (not taken from the runtime): faster cold start and a pinned, tested version.
import { build } from 'esbuild';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
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

/**
 * The SDK's schema files (one per client, all operations) key their objects by computed names
 * (`{ [_eQN]: 'Filter' }`, where `const _eQN = "ec2QueryName"`). esbuild cannot prove a computed key free of side
 * effects, so it keeps every schema of every operation: 527 KiB of EC2 for the two calls a job makes. Writing
 * each such key as the string literal it names is the same object, and lets tree shaking drop what no command
 * uses (EC2 alone: 817 → 311 KiB).
 */
const inlineSchemaKeys = {
  name: 'inline-sdk-schema-keys',
  setup(b) {
    b.onLoad({ filter: /@aws-sdk[\\/]client-[^\\/]+[\\/]dist-es[\\/]schemas[\\/]schemas_\d+\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const names = new Map();
      for (const m of text.matchAll(/^const (_\w+) = ("(?:[^"\\]|\\.)*");$/gm)) names.set(m[1], m[2]);
      return { contents: text.replace(/\[(_\w+)\]:/g, (key, id) => (names.has(id) ? `${names.get(id)}:` : key)), loader: 'js' };
    });
  },
};

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
    // The functions run with --enable-source-maps, which reads the map at load: without the sources it is a
    // fifth of the size and stack traces still name the TypeScript file and line.
    sourcemap: true,
    sourcesContent: false,
    metafile: true,
    // Third-party licence notices next to each bundle (index.mjs.LEGAL.txt), not inside it.
    legalComments: 'linked',
    // Dynamic imports become chunks of their own: rotate-certificates' ACME client (node-forge, axios, mime-db)
    // is only read from disk in acme mode. Still one build per job, so no two jobs share a chunk.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    plugins: [inlineSchemaKeys],
    mainFields: ['module', 'main'],
    // Some CommonJS dependencies call require() for Node built-ins; give the ESM bundle one.
    banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
    logLevel: 'warning',
  });
  writeFileSync(join(outdir, 'meta.json'), JSON.stringify(result.metafile));
  writeFileSync(join(outdir, 'THIRD-PARTY-NOTICES.txt'), notices(job, result.metafile));
  const index = Object.keys(result.metafile.outputs).find((f) => f.endsWith('index.mjs'));
  const bytes = result.metafile.outputs[index].bytes;
  const init = initBytes(result.metafile, index);
  const lazy = Object.keys(result.metafile.outputs).filter((f) => f.includes('/chunks/') && f.endsWith('.mjs'));
  rows.push([job, bytes, lazy.reduce((n, f) => n + statSync(join(root, f)).size, 0), init]);
}

/**
 * What a cold start loads: index.mjs and every chunk it imports statically, transitively. Chunks reached only
 * by a dynamic import (rotate-certificates' ACME client, loaded in acme mode) are not part of the init.
 */
function initBytes(metafile, entry) {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file) || !metafile.outputs[file]) return;
    seen.add(file);
    for (const imported of metafile.outputs[file].imports) if (imported.kind === 'import-statement') visit(imported.path);
  };
  visit(entry);
  return [...seen].reduce((n, f) => n + metafile.outputs[f].bytes, 0);
}

/**
 * Cold start stays a guard (issue 23 §5): the build fails when a bundle (dist/functions/<job>/index.mjs, ARCHITECTURE
 * §1) passes this. The table also shows what init loads besides it: the SDK's chunks that index.mjs imports statically.
 */
const MAX_BUNDLE_KIB = 500;

/** The licence of every npm package a bundle contains (name, version, licence and its LICENSE file), for the asset. */
function notices(job, metafile) {
  const dirs = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const m = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
    if (m) dirs.add(m[1]);
  }
  const parts = [...dirs].sort().map((dir) => {
    const pkg = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'));
    const file = readdirSync(join(root, dir)).find((f) => /^(licen[cs]e|copying|notice)/i.test(f));
    const text = file
      ? readFileSync(join(root, dir, file), 'utf8').trim()
      : `(no licence file in the package; package.json says ${pkg.license ?? 'nothing'})`;
    return `${pkg.name}@${pkg.version} — ${pkg.license ?? 'unknown licence'}\n\n${text}`;
  });
  return `Third-party software in dist/functions/${job} (${parts.length} packages)\n\n${parts.join(`\n\n${'-'.repeat(78)}\n\n`)}\n`;
}

if (rows.length === 0) {
  console.log('no functions/<job>/handler.ts to bundle yet');
} else {
  const width = Math.max(...rows.map(([job]) => job.length));
  const kib = (n, pad) => `${(n / 1024).toFixed(1).padStart(pad)} KiB`;
  console.log(`${'bundle'.padEnd(width)}  size (index.mjs)  loaded at init  all chunks`);
  for (const [job, bytes, lazy, init] of rows) {
    console.log(`${job.padEnd(width)}  ${kib(bytes, 10)}  ${kib(init, 10)}  ${lazy ? kib(lazy, 7) : '-'}`);
  }
  const over = rows.filter(([, bytes]) => bytes > MAX_BUNDLE_KIB * 1024);
  if (over.length > 0) {
    console.error(`bundles over ${MAX_BUNDLE_KIB} KiB (index.mjs): ${over.map(([job]) => job).join(', ')}`);
    process.exitCode = 1;
  }
}
