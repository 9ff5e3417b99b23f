import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toTrigger } from '../../shared/triggers.ts';
import { job } from '../../functions/sync-htpasswd/job.ts';
import { EVENTS_DIR, loadEvent } from '../support/events.ts';

describe('events/sync-htpasswd', () => {
  const files = readdirSync(join(EVENTS_DIR, 'sync-htpasswd')).filter((f) => f.endsWith('.json'));

  it.each(files)('%s is a trigger the job accepts', (file) => {
    const trigger = toTrigger(loadEvent(`sync-htpasswd/${file}`), job.options);
    expect(job.accepts).toContain(trigger.kind);
  });

  it('has the manual samples the README uses', () => {
    expect(files).toEqual(expect.arrayContaining(['manual-dry-run.json', 'manual-sync.json', 'manual-force-distribute.json']));
    expect(toTrigger(loadEvent('sync-htpasswd/manual-dry-run.json'), job.options)).toMatchObject({ kind: 'manual', dryRun: true });
    expect(toTrigger(loadEvent('sync-htpasswd/manual-force-distribute.json'), job.options)).toMatchObject({
      options: { forceDistribute: true },
    });
  });

  it('the top-level parameter-change sample names a user under the default path', () => {
    expect(toTrigger(loadEvent('parameter-change.json'))).toMatchObject({ kind: 'parameter-change', name: '/registry/users/alice' });
  });

  it('rejects a bad manual payload by name', () => {
    expect(() => toTrigger({ forceDistribute: 'yes' }, job.options)).toThrow('forceDistribute: expected true or false');
    expect(() => toTrigger({ users: [] }, job.options)).toThrow('unknown key "users"');
  });
});
