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
    // The dialect puts apply in apply.ts (job.ts until issue 23 §3): either file may pass the option.
    const stopping = JOB_NAMES.filter((job) =>
      ['job.ts', 'apply.ts'].some((file) => /stopOnFailure:\s*true/.test(read(`functions/${job}/${file}`))),
    );
    const step = read('docs/architecture.md').match(/^5\. `apply` runs each action[\s\S]*?(?=^\d\. )/m)?.[0] ?? '';
    // The clause that ends in "stop at the first failure" (clauses are separated by semicolons).
    const clause = step.replace(/\s+/g, ' ').match(/([^;]*) stops? at the first failure/)?.[1] ?? '';
    const named = JOB_NAMES.filter((job) => clause.includes(job));
    expect(named).toEqual(stopping);
  });
});
