import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JOB_NAMES } from '../../shared/job-names.ts';

/**
 * The project's shape (ARCHITECTURE §1, STYLE §11): every job folder speaks the same dialect, and the arrows
 * between folders point one way — shared/ and infra/ never import a job, scripts/ never imports test/.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const DIALECT = ['handler.ts', 'job.ts', 'config.ts', 'model.ts', 'observe.ts', 'plan.ts', 'apply.ts'];

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return name === 'node_modules' ? [] : sources(path);
    return /\.(ts|mjs)$/.test(name) ? [path] : [];
  });
}

/** The project-relative files `file` imports (static and dynamic imports of relative paths). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"`](\.{1,2}\/[^'"`$]+)['"`]/g)].map((m) => m[1] as string);
  return specs.map((spec) => relative(ROOT, resolve(ROOT, file, '..', spec)));
}

/** Every import cycle among `files` (type-only imports count too), each as `a → b → a`. */
function cyclesIn(files: readonly string[]): string[] {
  const graph = new Map(files.map((file) => [file, importsOf(file).filter((dep) => files.includes(dep))]));
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const cycles: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const dep of graph.get(file) ?? []) {
      if (state.get(dep) === 'open') cycles.push([...path.slice(path.indexOf(dep)), dep].join(' → '));
      else if (!state.has(dep)) visit(dep);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file);
  return cycles;
}

describe('project structure', () => {
  it.each([...JOB_NAMES])('functions/%s has every dialect file', (job) => {
    const files = readdirSync(join(ROOT, 'functions', job));
    expect(DIALECT.filter((f) => !files.includes(f))).toEqual([]);
  });

  it('has a folder for every job and no other', () => {
    const folders = readdirSync(join(ROOT, 'functions'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
    expect(folders.sort()).toEqual([...JOB_NAMES].sort());
  });

  it.each([
    ['shared', 'functions/'],
    ['local', 'functions/'],
    ['scripts', 'test/'],
    ['local', 'test/'],
    ['functions', 'test/'],
    ['functions', 'scripts/'],
  ])('%s/ imports nothing from %s', (dir, forbidden) => {
    const offending = sources(dir).flatMap((file) =>
      importsOf(file)
        .filter((dep) => dep.startsWith(forbidden))
        .map((dep) => `${file} → ${dep}`),
    );
    expect(offending).toEqual([]);
  });

  // A cycle makes module init order matter and hides which layer owns what (job.ts ↔ run-record.ts was one).
  it.each(['shared', 'infra', 'local', 'scripts', 'functions'])('%s/ has no import cycle', (dir) => {
    expect(cyclesIn(sources(dir))).toEqual([]);
  });

  // The stack writes each job's environment with the builder its config module exports (one source of the names);
  // a config module is schemas and types, so that is all of the functions the CDK app loads.
  it('infra/ imports from functions/ only config modules, which import only shared/, their model.ts and config.ts', () => {
    // config.ts, and a second Lambda's (purge-stale-uploads' inventory-config.ts)
    const configs = new Set(
      JOB_NAMES.flatMap((job) =>
        readdirSync(join(ROOT, 'functions', job))
          .filter((f) => /^([a-z0-9-]+-)?config\.ts$/.test(f))
          .map((f) => `functions/${job}/${f}`),
      ),
    );
    const offending = sources('infra').flatMap((file) =>
      importsOf(file)
        .filter((dep) => dep.startsWith('functions/') && !configs.has(dep))
        .map((dep) => `${file} → ${dep}`),
    );
    const valueImports = (file: string) =>
      [...readFileSync(join(ROOT, file), 'utf8').matchAll(/^import (?!type )[^;]*?from ['"](\.{1,2}\/[^'"]+)['"]/gms)].map((m) =>
        relative(ROOT, resolve(ROOT, file, '..', m[1] as string)),
      );
    const wide = [...configs].flatMap((file) =>
      valueImports(file)
        .filter((dep) => !dep.startsWith('shared/') && !/^functions\/[^/]+\/(model|config)\.ts$/.test(dep))
        .map((dep) => `${file} → ${dep}`),
    );
    expect([...offending, ...wide]).toEqual([]);
  });

  it('no job imports another job', () => {
    const offending = JOB_NAMES.flatMap((job) =>
      sources(join('functions', job)).flatMap((file) =>
        importsOf(file)
          .filter((dep) => dep.startsWith('functions/') && !dep.startsWith(`functions/${job}/`))
          .map((dep) => `${file} → ${dep}`),
      ),
    );
    expect(offending).toEqual([]);
  });

  // One zod dialect (issue 23 §2): functions and infra share schemas and messages, so both use zod/mini's functional forms.
  it('no file in functions/, shared/, infra/, scripts/ or local/ imports classic zod instead of zod/mini', () => {
    const classic = ['functions', 'shared', 'infra', 'scripts', 'local'].flatMap((dir) =>
      sources(dir).filter((file) => /(?:from\s+|import\s*\(\s*|import\s+)['"`]zod['"`]/.test(readFileSync(join(ROOT, file), 'utf8'))),
    );
    expect(classic).toEqual([]);
  });

  // One token without a space to break at (a long regular expression) is the only line allowed past the limit.
  it.each(['functions', 'shared', 'infra'])('no line in %s/ is longer than 140 characters', (dir) => {
    const long = sources(dir).flatMap((file) =>
      readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .flatMap((line, i) => (line.length > 140 && line.trim().includes(' ') ? [`${file}:${i + 1} (${line.length})`] : [])),
    );
    expect(long).toEqual([]);
  });
});
