import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JOB_NAMES } from '../../shared/job-names.ts';

/** Claims of the README and docs/ that the code decides (issue 21): each is read back from the code. */
const ROOT = join(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

describe('what the docs claim', () => {
  it("names the Node.js version package.json's engines asks for", () => {
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const major = engines.match(/^>=\s*(\d+)/)?.[1];
    expect(read('README.md')).toContain(`Node.js ${major} or newer`);
  });

  it('names exactly the jobs whose apply stops at the first failure', () => {
    const stopping = JOB_NAMES.filter((job) => /stopOnFailure:\s*true/.test(read(`functions/${job}/job.ts`)));
    const step = read('docs/architecture.md').match(/^5\. `apply` runs each action[\s\S]*?(?=^\d\. )/m)?.[0] ?? '';
    const named = JOB_NAMES.filter((job) => step.includes(`\`${job}\``));
    expect(named).toEqual(stopping);
  });
});
