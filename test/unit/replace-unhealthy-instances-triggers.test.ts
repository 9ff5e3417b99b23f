import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toTrigger } from '../../shared/triggers.ts';
import { job, toRequest } from '../../functions/replace-unhealthy-instances/job.ts';
import { planReplacements } from '../../functions/replace-unhealthy-instances/plan.ts';
import { EVENTS_DIR, loadEvent } from '../support/events.ts';
import { fleet, member, NOW, policy } from '../support/replace-unhealthy-instances-fixtures.ts';

describe('triggers and payloads', () => {
  it('parses every sample in events/replace-unhealthy-instances', () => {
    const dir = join(EVENTS_DIR, 'replace-unhealthy-instances');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.sort()).toEqual(['manual-dry-run.json', 'manual-force.json', 'manual-instance-ids.json']);
    for (const f of files) expect(toTrigger(loadEvent(`replace-unhealthy-instances/${f}`), job.options).kind).toBe('manual');
    expect(toRequest(toTrigger(loadEvent('replace-unhealthy-instances/manual-force.json'), job.options))).toEqual({ kind: 'manual', instanceIds: ['i-0123456789abcdef0'], force: true });
  });

  it.each([
    [{ instanceIds: ['i-12345678'] }, undefined],
    [{ instanceIds: ['i-0123456789abcdef0'], force: false }, undefined],
    [{ instanceIds: ['i-123'] }, 'instanceIds.0: expected an instance id: i- and 8 or 17 hex digits'],
    [{ instanceIds: ['i-0123456789ABCDEF0'] }, 'instanceIds.0: expected an instance id'],
    [{ instanceIds: 'i-12345678' }, 'instanceIds: expected a list of instance ids'],
    [{ instanceIds: [] }, 'instanceIds: expected at least one instance id'],
    [{ force: 'yes' }, 'force: expected true or false'],
    [{ instanceId: 'i-12345678' }, 'unknown key "instanceId"'],
  ])('manual payload %j', (payload, error) => {
    if (error) expect(() => toTrigger(payload, job.options)).toThrow(error);
    else expect(toTrigger(payload, job.options).kind).toBe('manual');
  });

  it('carries the alarm dimensions into the request', () => {
    const t = toTrigger(loadEvent('alarm-action.json'), job.options);
    expect(toRequest(t)).toEqual({ kind: 'alarm', state: 'ALARM', targetGroup: 'targetgroup/registry/6d0ecf831eec9f09' });
    const p = planReplacements(fleet([member(1)]), policy, toRequest(t), NOW);
    expect(p.assessment.alarm).toEqual({ targetGroup: 'targetgroup/registry/6d0ecf831eec9f09', targetGroupMatches: true });
    expect(toRequest(toTrigger(loadEvent('schedule.json'), job.options))).toEqual({ kind: 'schedule' });
  });
});
