import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { APP_CONTEXT_KEYS, CONTEXT_KEYS } from '../../infra/config.ts';
import { COMMON_VARIABLES } from '../../shared/config.ts';
import { JOB_NAMES } from '../../shared/job-names.ts';
import { CONFIGURATION_DOC, describeShape, jobEnvironments, regenerate } from '../../scripts/config-docs.ts';

/**
 * docs/configuration.md is generated from the schemas the functions validate at cold start (npm run docs:config):
 * a variable added, renamed, re-defaulted or re-described in a schema without regenerating the docs fails here.
 */
const doc = readFileSync(CONFIGURATION_DOC, 'utf8');

describe('docs/configuration.md', () => {
  it('has the environment tables the schemas generate (run npm run docs:config)', async () => {
    expect(await regenerate(doc)).toBe(doc);
  });

  it('says what every variable of every job means (a description in the schema or its defineEnvironment table)', async () => {
    const sections = [{ title: 'common', variables: describeShape(COMMON_VARIABLES) }, ...(await jobEnvironments())];
    const undescribed = sections.flatMap(({ title, variables }) =>
      variables.filter((v) => !v.description).map((v) => `${title}: ${v.name}`),
    );
    expect(undescribed).toEqual([]);
  });

  it('has a table for every job (each functions/<job>/config.ts exports <job>Environment = defineEnvironment(shape))', async () => {
    const titles = (await jobEnvironments()).map((s) => s.title);
    expect(JOB_NAMES.filter((job) => !titles.includes(`\`${job}\``))).toEqual([]);
  });

  it('lists every CDK context key the app reads, and no other', () => {
    const section = doc.slice(doc.indexOf('## CDK context'));
    const rows = section.split('\n').filter((line) => /^\| `/.test(line));
    const names = (text: string) => [...text.matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1] as string);
    const keyed = rows.flatMap((row) => names(row.split(' | ')[0] ?? ''));
    const mentioned = new Set(rows.flatMap(names));
    const known: readonly string[] = [...CONTEXT_KEYS, ...APP_CONTEXT_KEYS];
    expect(keyed.filter((key) => !known.includes(key))).toEqual([]);
    expect(known.filter((key) => key !== 'nag' && !mentioned.has(key))).toEqual([]);
  });
});
