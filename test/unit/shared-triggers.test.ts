import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
import { UnsupportedEventError, ValidationError } from '../../shared/errors.ts';
import { toTrigger } from '../../shared/triggers.ts';
import { EVENTS_DIR, loadEvent } from '../support/events.ts';

const UNHEALTHY_DIMENSIONS = {
  TargetGroup: 'targetgroup/registry/6d0ecf831eec9f09',
  LoadBalancer: 'app/registry/50dc6c495c0c9188',
};

describe('toTrigger on every sample in events/', () => {
  it.each([
    [
      'schedule.json',
      {
        kind: 'schedule',
        source: 'eventbridge-rule',
        schedule: 'arn:aws:events:us-east-1:123456789012:rule/registry-purge-stale-uploads-schedule',
        time: '2026-11-23T03:00:00Z',
      },
    ],
    [
      'scheduler.json',
      {
        kind: 'schedule',
        source: 'scheduler',
        schedule: 'arn:aws:scheduler:us-east-1:123456789012:schedule/default/registry-sync-htpasswd-drift',
        time: '2026-11-23T04:00:00Z',
      },
    ],
    [
      'alarm-state-change.json',
      {
        kind: 'alarm',
        source: 'eventbridge',
        alarmName: 'registry-unhealthy-hosts',
        state: 'ALARM',
        previousState: 'OK',
        dimensions: UNHEALTHY_DIMENSIONS,
        time: '2026-11-23T03:12:41Z',
      },
    ],
    [
      'alarm-state-change-ok.json',
      {
        kind: 'alarm',
        source: 'eventbridge',
        alarmName: 'registry-unhealthy-hosts',
        state: 'OK',
        previousState: 'ALARM',
        dimensions: UNHEALTHY_DIMENSIONS,
        time: '2026-11-23T03:21:41Z',
      },
    ],
    [
      'alarm-action.json',
      {
        kind: 'alarm',
        source: 'alarm-action',
        alarmName: 'registry-unhealthy-hosts',
        state: 'ALARM',
        previousState: 'OK',
        dimensions: UNHEALTHY_DIMENSIONS,
        time: '2026-11-23T03:12:41.000+0000',
      },
    ],
    [
      'alarm-sns.json',
      {
        kind: 'alarm',
        source: 'sns',
        alarmName: 'registry-unhealthy-hosts',
        state: 'ALARM',
        previousState: 'OK',
        dimensions: UNHEALTHY_DIMENSIONS,
        time: '2026-11-23T03:12:41.000+0000',
      },
    ],
    [
      'parameter-change.json',
      { kind: 'parameter-change', name: '/registry/users/alice', operation: 'Update', time: '2026-11-23T09:15:02Z' },
    ],
    [
      'certificate-expiring.json',
      {
        kind: 'certificate-expiry',
        certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/61f50cd4-45b9-4259-b049-d0a53682fa4b',
        daysToExpiry: 31,
        time: '2026-11-23T00:00:00Z',
      },
    ],
    ['autoscaling-test-notification.json', { kind: 'ignored', reason: 'autoscaling:TEST_NOTIFICATION' }],
    ['manual.json', { kind: 'manual', dryRun: true, reason: 'checking what a run would do', options: {} }],
  ])('%s', (file, expected) => {
    expect(toTrigger(loadEvent(file))).toEqual(expected);
  });

  it('covers every top-level file in events/', () => {
    const tested = new Set([
      'schedule.json',
      'scheduler.json',
      'alarm-state-change.json',
      'alarm-state-change-ok.json',
      'alarm-action.json',
      'alarm-sns.json',
      'parameter-change.json',
      'certificate-expiring.json',
      'autoscaling-test-notification.json',
      'manual.json',
    ]);
    const files = readdirSync(EVENTS_DIR).filter((f) => f.endsWith('.json'));
    expect(files.filter((f) => !tested.has(f))).toEqual([]);
  });
});

describe('manual payloads', () => {
  const options = {
    maxAge: z.optional(z.string({ error: 'expected a duration like 24h' })),
    repository: z.optional(z.string({ error: 'expected a repository name' })),
  };

  it('accepts an empty object as a plain run', () => {
    expect(toTrigger({}, options)).toEqual({ kind: 'manual', dryRun: false, options: {} });
  });

  it('keeps job options apart from dryRun and reason', () => {
    expect(toTrigger({ dryRun: false, maxAge: '24h', repository: 'library/nginx' }, options)).toEqual({
      kind: 'manual',
      dryRun: false,
      options: { maxAge: '24h', repository: 'library/nginx' },
    });
  });

  it.each([
    [{ maxAgee: '24h' }, /unknown key "maxAgee" \(allowed keys: dryRun, reason, maxAge, repository\)/],
    [{ dryRun: 'yes' }, /dryRun: expected true or false/],
    [{ dry_run: true }, /unknown key "dry_run"/],
    [{ maxAge: 24 }, /maxAge: expected a duration like 24h/],
  ])('rejects %j naming the key', (payload, message) => {
    expect(() => toTrigger(payload, options)).toThrow(ValidationError);
    expect(() => toTrigger(payload, options)).toThrow(message);
  });

  it('rejects job options for a job that takes none', () => {
    expect(() => toTrigger({ force: true })).toThrow(/unknown key "force" \(allowed keys: dryRun, reason\)/);
  });
});

describe('unsupported events', () => {
  it.each([
    [null, /unsupported event: null/],
    [[{ dryRun: true }], /unsupported event: an array/],
    ['run', /unsupported event: a string/],
    [
      { source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification', detail: {} },
      /source=aws.ec2 detail-type=EC2 Instance State-change Notification/,
    ],
    [{ source: 'aws.s3', detail: {} }, /AWS event source=aws.s3/],
    [{ Records: [{ eventSource: 'aws:s3', s3: {} }] }, /not one SNS message/],
    [{ Records: [{ Sns: { Message: 'hello' } }] }, /SNS message that is not JSON/],
    [{ Records: [{ Sns: { Message: '{"Type":"Notification"}' } }] }, /not a CloudWatch alarm/],
    [{ source: 'aws.cloudwatch', alarmData: { alarmName: 'x', state: { value: 'RED' } } }, /alarm event without alarmName\/state.value/],
    [{ source: 'aws.ssm', 'detail-type': 'Parameter Store Change', detail: {} }, /Parameter Store Change without detail.name/],
  ])('%j', (event, message) => {
    expect(() => toTrigger(event)).toThrow(UnsupportedEventError);
    expect(() => toTrigger(event)).toThrow(message);
  });
});
