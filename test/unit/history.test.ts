import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeHistory, encodeHistory, GZIP_ABOVE_BYTES, historyDayPrefix, historyKey } from '../../shared/history.ts';
import { correlationIdOf, toTrigger } from '../../shared/triggers.ts';

const event = (name: string): unknown => JSON.parse(readFileSync(join(import.meta.dirname, '../../events', name), 'utf8'));

describe('run history keys', () => {
  it('partitions by job and UTC date (Hive style, for Athena), orders by start time, is unique by request id', () => {
    const key = historyKey(
      { prefix: 'reports' },
      'purge-stale-uploads',
      '2026-11-23T03:00:00.000Z',
      '7c0a8f2e-1b2c-4d3e-9f4a-5b6c7d8e9f0a',
    );
    expect(key).toBe('reports/job=purge-stale-uploads/date=2026-11-23/2026-11-23T03:00:00.000Z-7c0a8f2e-1b2c-4d3e-9f4a-5b6c7d8e9f0a.json');
    expect(key.startsWith(historyDayPrefix({ prefix: 'reports' }, 'purge-stale-uploads', '2026-11-23'))).toBe(true);
    expect(historyKey({ prefix: 'fleet/a/reports' }, 'sync-htpasswd', '2026-01-02T00:00:00.000Z', 'r/../x', true)).toBe(
      'fleet/a/reports/job=sync-htpasswd/date=2026-01-02/2026-01-02T00:00:00.000Z-r_.._x.json.gz',
    );
  });

  it('refuses a start time that is not ISO (the date partition would be wrong)', () => {
    expect(() => historyKey({ prefix: 'reports' }, 'j', 'yesterday', 'r')).toThrow(
      'historyKey: startedAt must be an ISO time, got "yesterday"',
    );
  });

  it('gzips only large reports, and reads back both forms', () => {
    const small = { job: 'j', actions: [{ type: 'delete-upload', target: 't' }] };
    const big = {
      job: 'j',
      actions: Array.from({ length: 5000 }, (_, i) => ({
        type: 'delete-upload',
        target: `library/nginx/_uploads/${i}`,
        reason: 'started 190h ago > 168h',
      })),
    };
    const a = encodeHistory(small);
    const b = encodeHistory(big);
    expect(a.gzip).toBe(false);
    expect(b.gzip).toBe(true);
    expect(JSON.stringify(big).length).toBeGreaterThan(GZIP_ABOVE_BYTES);
    expect(b.body.length).toBeLessThan(JSON.stringify(big).length / 5);
    expect(decodeHistory('k.json', a.body)).toEqual(small);
    expect(decodeHistory('k.json.gz', b.body)).toEqual(big);
  });
});

describe('correlation id', () => {
  it.each([
    ['schedule.json', '53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa'],
    ['alarm-action.json', 'registry-unhealthy-hosts@2026-11-23T03:12:41.000+0000'],
  ])('%s → %s', (file, id) => {
    const e = event(file);
    expect(correlationIdOf(e, toTrigger(e), 'req-1')).toBe(id);
  });

  it('an EventBridge alarm state change, a parameter change and an SNS alarm', () => {
    for (const file of ['alarm-state-change.json', 'parameter-change.json']) {
      const e = event(file) as { id: string };
      expect(correlationIdOf(e, toTrigger(e), 'req-1')).toBe(e.id);
    }
    const sns = event('alarm-sns.json');
    expect(correlationIdOf(sns, toTrigger(sns), 'req-1')).toMatch(/^[^@]+@.+/);
  });

  it('a manual run: its reason, else the request id', () => {
    expect(correlationIdOf({ reason: 'INC-4711 disk full' }, toTrigger({ reason: 'INC-4711 disk full' }), 'req-1')).toBe(
      'INC-4711 disk full',
    );
    expect(correlationIdOf({}, toTrigger({}), 'req-1')).toBe('manual-req-1');
    const long = 'x'.repeat(500);
    expect(correlationIdOf({ reason: long }, toTrigger({ reason: long }))).toHaveLength(200);
  });
});
