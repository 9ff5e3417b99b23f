import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.ts';
import { followUpInput, toTrigger } from '../../shared/triggers.ts';
import { job, toRequest } from '../../functions/replace-unhealthy-instances/job.ts';
import { plan } from '../../functions/replace-unhealthy-instances/plan.ts';
import { EVENTS_DIR, loadEvent } from '../support/events.ts';
import { fleet, member, NOW, policy } from '../support/replace-unhealthy-instances-fixtures.ts';

describe('triggers and payloads', () => {
  it('parses every sample in events/replace-unhealthy-instances', () => {
    const dir = join(EVENTS_DIR, 'replace-unhealthy-instances');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.sort()).toEqual(['follow-up.json', 'manual-dry-run.json', 'manual-force.json', 'manual-instance-ids.json']);
    for (const f of files)
      expect(toTrigger(loadEvent(`replace-unhealthy-instances/${f}`), job.options).kind).toBe(
        f === 'follow-up.json' ? 'follow-up' : 'manual',
      );
    expect(toRequest(toTrigger(loadEvent('replace-unhealthy-instances/manual-force.json'), job.options))).toEqual({
      kind: 'manual',
      instanceIds: ['i-0123456789abcdef0'],
      force: true,
    });
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
    const p = plan({ ...fleet([member(1)]), request: toRequest(t) }, policy, NOW);
    expect(p.assessment.alarm).toEqual({ targetGroup: 'targetgroup/registry/6d0ecf831eec9f09', targetGroupMatches: true });
    expect(toRequest(toTrigger(loadEvent('schedule.json'), job.options))).toEqual({ kind: 'schedule' });
  });
});

describe('follow-up triggers (issue 18)', () => {
  it('normalises the follow-up sample and turns it into a follow-up request', () => {
    const t = toTrigger(loadEvent('replace-unhealthy-instances/follow-up.json'), job.options);
    expect(t).toEqual({
      kind: 'follow-up',
      source: 'scheduler',
      job: 'replace-unhealthy-instances',
      target: 'i-0123456789abcdef0',
      since: '2026-11-23T03:00:00.000Z',
      schedule: expect.stringMatching(
        /^arn:aws:scheduler:.*:schedule\/registry-fleet-replace-follow-ups\/replace-follow-up-i-0123456789abcdef0-/,
      ),
      time: '2026-11-23T03:02:00Z',
    });
    expect(toRequest(t)).toEqual({ kind: 'follow-up', instanceId: 'i-0123456789abcdef0', markedAt: '2026-11-23T03:00:00.000Z' });
    expect(job.accepts).toContain('follow-up');
  });

  it('the input a schedule is created with is exactly what the trigger recognises', () => {
    const input = followUpInput({ job: 'replace-unhealthy-instances', target: 'i-0123456789abcdef0', since: '2026-11-23T03:00:00.000Z' });
    const delivered = JSON.parse(
      JSON.stringify(input)
        .replace('<aws.scheduler.schedule-arn>', 'arn:aws:scheduler:us-east-1:1:schedule/g/n')
        .replace('<aws.scheduler.scheduled-time>', '2026-11-23T03:02:00Z'),
    ) as unknown;
    expect(toRequest(toTrigger(delivered, job.options))).toEqual({
      kind: 'follow-up',
      instanceId: 'i-0123456789abcdef0',
      markedAt: '2026-11-23T03:00:00.000Z',
    });
  });

  it.each([
    [
      { job: 'purge-disk-volumes', target: 'i-0123456789abcdef0' },
      'invalid follow-up: detail.job: expected replace-unhealthy-instances, got "purge-disk-volumes"',
    ],
    [
      { job: 'replace-unhealthy-instances', target: 'vol-1' },
      'invalid follow-up: detail.target: expected an instance id like i-0123456789abcdef0, got "vol-1"',
    ],
    [
      { job: 'replace-unhealthy-instances', target: 'i-0123456789abcdef0', since: 'yesterday' },
      'invalid follow-up: detail.since: expected an ISO time',
    ],
    [{ job: 'replace-unhealthy-instances' }, 'invalid follow-up: detail.job and detail.target: expected two non-empty strings'],
  ])('a bad follow-up %j is rejected, naming the field', (detail, message) => {
    const event = { source: 'registry.control-plane', 'detail-type': 'Follow-up', detail };
    expect(() => job.scope(toTrigger(event, job.options) as never, {} as never)).toThrow(ValidationError);
    expect(() => job.scope(toTrigger(event, job.options) as never, {} as never)).toThrow(message);
  });
});
