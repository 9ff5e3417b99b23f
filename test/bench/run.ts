/**
 * `npm run bench [-- NAME …]`: runs every test/bench/<name>.bench.ts (or the named ones) in turn and writes
 * their sections to test/bench/results.md. Each bench module default-exports an async function returning a
 * Markdown section; ratios are measured within one run, so the file compares like with like. Each bench runs in
 * its own Node process, as each Lambda does: the shared SDK clients (shared/aws.ts) are made once per process from
 * the environment, so a bench that ran earlier in the same process would leave them pointing at its stopped moto.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { arch, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import * as prettier from 'prettier';

const dir = import.meta.dirname;

// The child's side: `run.ts --one <name> <out>` runs one bench and writes its Markdown section to <out>.
if (process.argv[2] === '--one') {
  const [, , , name, out] = process.argv;
  const mod = (await import(join(dir, `${name}.bench.ts`))) as { default: () => Promise<string> };
  writeFileSync(out as string, await mod.default());
  process.exit(0);
}

const wanted = process.argv.slice(2);
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.slice(0, -'.bench.ts'.length))
  .filter((name) => wanted.length === 0 || wanted.includes(name))
  .sort();
if (names.length === 0) {
  console.error(wanted.length ? `no benchmark named ${wanted.join(', ')}` : 'no benchmarks in test/bench');
  process.exit(2);
}

const resultsFile = join(dir, 'results.md');
// Keep the sections of benches not run this time, so `npm run bench -- one` updates only its own section.
const sections = new Map<string, string>();
if (existsSync(resultsFile)) {
  for (const part of readFileSync(resultsFile, 'utf8')
    .split(/^<!-- bench: /m)
    .slice(1)) {
    const end = part.indexOf(' -->');
    sections.set(part.slice(0, end), part.slice(end + 4).trim());
  }
}

// The commit a row measured, read before the benches start (a commit made during a long run is not the one measured);
// changes not yet committed under the measured trees are said, so a row never names a commit it did not run.
const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8' }).trim();
const commit = (() => {
  try {
    const dirty =
      git('status', '--porcelain', '--', '../../functions', '../../shared', '../../infra', '../../local', '../support', '.') !== '';
    return `commit ${git('rev-parse', '--short', 'HEAD')}${dirty ? ' + uncommitted changes' : ''}`;
  } catch {
    return 'no git commit';
  }
})();

let failed = false;
for (const name of names) {
  console.log(`bench ${name} …`);
  const started = Date.now();
  try {
    const out = join(tmpdir(), `bench-${name}-${process.pid}.md`);
    const child = spawnSync(process.execPath, [...process.execArgv, import.meta.filename, '--one', name, out], { stdio: 'inherit' });
    if (child.status !== 0) throw new Error(`exited with ${child.status ?? child.signal}`);
    const markdown = readFileSync(out, 'utf8');
    const header = `_Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? arch()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${commit}; took ${((Date.now() - started) / 1000).toFixed(1)} s._`;
    sections.set(name, `${header}\n\n${markdown.trim()}`);
    console.log(markdown);
  } catch (error) {
    failed = true;
    console.error(`bench ${name} failed:`, error);
  }
}

const body = [...sections.keys()]
  .sort()
  .map((name) => `<!-- bench: ${name} -->\n\n${sections.get(name)}`)
  .join('\n\n');
const text = `# Benchmark results\n\nWritten by \`npm run bench\` (test/bench/run.ts). Re-run to refresh.\n\n${body}\n`;
// Formatted as `npm run lint` checks it (prettier --check .), so a bench run never leaves the lint red.
const options = { ...(await prettier.resolveConfig(resultsFile)), filepath: resultsFile };
writeFileSync(resultsFile, await prettier.format(text, options));
console.log(`wrote ${resultsFile}`);
process.exit(failed ? 1 : 0);
