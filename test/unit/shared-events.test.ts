import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JOB_NAMES } from '../../shared/job-names.ts';
import type { JobDefinition, JobTypes } from '../../shared/job.ts';
import { toTrigger } from '../../shared/triggers.ts';
import { EVENTS_DIR, loadEvent } from '../support/events.ts';

/**
 * Every per-job sample in events/<job>/ (the README's `aws lambda invoke --payload file://…` examples) is an
 * event that job accepts: it normalises with the job's strict manual options, to a trigger kind the job acts on.
 */
const jobs = await Promise.all(
  JOB_NAMES.map(
    async (name) => [name, ((await import(`../../functions/${name}/job.ts`)) as { job: JobDefinition<JobTypes> }).job] as const,
  ),
);

describe('events/<job>/ samples', () => {
  it('has a folder of samples for every job, and no folder for anything else', () => {
    const folders = readdirSync(EVENTS_DIR, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
    expect(folders).toEqual([...JOB_NAMES].sort());
  });

  for (const [name, job] of jobs) {
    const files = readdirSync(join(EVENTS_DIR, name)).filter((f) => f.endsWith('.json'));
    it.each(files)(`${name}: %s is a trigger the job acts on`, (file) => {
      const trigger = toTrigger(loadEvent(join(name, file)), job.options);
      expect(job.name).toBe(name);
      expect([...job.accepts, 'ignored']).toContain(trigger.kind);
    });
  }
});
