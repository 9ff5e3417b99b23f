import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logsInsightsUrl, renderNotification, SUBJECT_MAX, type NotifyReport, type NotifyWhere } from '../../shared/notify.ts';
import { findSecrets } from '../../shared/redact.ts';

const fixture = (name: string): NotifyReport & { history: { key: string } } =>
  JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/reports', `${name}.json`), 'utf8')) as NotifyReport & {
    history: { key: string };
  };

const where = (report: { history: { key: string } }, functionName: string): NotifyWhere => ({
  region: 'us-east-1',
  historyBucket: 'registry-fleet-history',
  history: report.history,
  logGroupName: `/aws/lambda/${functionName}`,
  functionName,
});

describe('run notifications', () => {
  it('a failed purge: subject, attributes, counts, the failed actions with their errors, then the applied ones, and where the report is', () => {
    const report = fixture('failed-purge');
    const n = renderNotification(report, where(report, 'registry-fleet-purge-stale-uploads'));
    expect(n?.subject).toBe('registry-fleet-purge-stale-uploads FAILED: 2 of 5 actions failed');
    expect(n?.attributes).toEqual({
      job: { DataType: 'String', StringValue: 'purge-stale-uploads' },
      status: { DataType: 'String', StringValue: 'failed' },
      dryRun: { DataType: 'String', StringValue: 'false' },
      trigger: { DataType: 'String', StringValue: 'schedule' },
    });
    const lines = n?.message.split('\n') ?? [];
    expect(lines[0]).toBe('purge-stale-uploads: 2 of 5 actions failed');
    expect(lines).toContain('summary:        planned 0 · applied 2 · skipped 1 · failed 2');
    expect(lines).toContain('correlation id: 53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa');
    expect(lines.find((l) => l.startsWith('trigger:'))).toContain(
      'schedule · schedule arn:aws:events:us-east-1:123456789012:rule/registry-fleet-purge-stale-uploads',
    );
    const failed = lines.indexOf('failed (2):');
    expect(lines.slice(failed + 1, failed + 3)).toEqual([
      '  delete-upload library/nginx/_uploads/3f2a9c1e-0d4b-4c5a-9e6f-7a8b9c0d1e2f: started 190h ago > 168h — AccessDenied: User: arn:aws:sts::123456789012:assumed-role/purge/x is not authorized to perform: s3:DeleteObject',
      '  abort-multipart-upload docker/registry/v2/repositories/library/nginx/_uploads/3f2a9c1e-0d4b-4c5a-9e6f-7a8b9c0d1e2f/data 2~Qx7: initiated 190h ago > 168h — AccessDenied: not authorized to perform: s3:AbortMultipartUpload',
    ]);
    expect(lines.indexOf('applied (destructive) (2):')).toBeGreaterThan(failed);
    expect(n?.message).not.toContain('aa11bb22'); // a skipped, not-stale upload is not news
    expect(lines).toContain(`full report:    s3://registry-fleet-history/${report.history.key}`);
    expect(lines.find((l) => l.startsWith('logs:'))).toMatch(
      /^logs: +https:\/\/us-east-1\.console\.aws\.amazon\.com\/cloudwatch\/home\?region=us-east-1#logsV2:logs-insights\$3FqueryDetail\$3D~\(/,
    );
  });

  it('a stalled replacement: nothing failed, but it needs a person; the stalled instance and its reason are listed', () => {
    const report = { ...fixture('stalled-replacement'), metrics: { ReplacementStalled: 1, CircuitOpen: 0, UnhealthyInstances: 1 } };
    const n = renderNotification(report, where(report, 'registry-fleet-replace-unhealthy-instances'));
    expect(n?.status).toBe('attention');
    expect(n?.subject).toBe('registry-fleet-replace-unhealthy-instances ATTENTION: needs attention: replacement stalled');
    expect(n?.attributes.status).toEqual({ DataType: 'String', StringValue: 'attention' });
    const lines = n?.message.split('\n') ?? [];
    expect(lines[0]).toBe('replace-unhealthy-instances: needs attention: replacement stalled');
    expect(lines.find((l) => l.startsWith('trigger:'))).toBe(
      'trigger:        alarm · alarmName registry-fleet-unhealthy-hosts · state ALARM · time 2026-11-23T03:12:41.000+0000',
    );
    const section = lines.indexOf('needs a person (1):');
    expect(lines[section + 1]).toBe(
      "  replace-instance i-0abc1234def567890: replacement-stalled: raised desired capacity at 2026-11-23T02:40:00.000Z (32m ago) and the replacement does not serve yet (launching); check the group's activities",
    );
    expect(n?.message).not.toContain('i-0fed9876cba543210'); // in flight is normal
  });

  it('says nothing for a run that needs nobody; a destructive applied run is an "applied" notification, a sync is not', () => {
    const quiet = { ...fixture('stalled-replacement'), metrics: { ReplacementStalled: 0 } };
    expect(renderNotification(quiet, where(quiet, 'x'))).toBeUndefined();
    const purge = fixture('failed-purge');
    const applied = {
      ...purge,
      actions: purge.actions.filter((a) => a.status !== 'failed'),
      summary: { planned: 0, applied: 2, skipped: 1, failed: 0 },
    };
    expect(renderNotification(applied, where(purge, 'f'))?.subject).toBe('f APPLIED: applied 2 destructive actions');
    const sync = {
      ...applied,
      job: 'sync-htpasswd',
      actions: [{ type: 'publish-htpasswd', target: 's3://b/control-plane/htpasswd', reason: 'users changed', status: 'applied' }],
    };
    expect(renderNotification(sync, where(purge, 'f'))).toBeUndefined();
  });

  it('keeps the subject SNS-valid: under 100 ASCII characters on one line', () => {
    const report = { ...fixture('failed-purge'), dryRun: true };
    const n = renderNotification(report, where(report, `a-very-long-stack-name-for-the-fleet-${'x'.repeat(60)}-purge-stale-uploads`));
    expect(n?.subject.length).toBeLessThanOrEqual(SUBJECT_MAX);
    expect(n?.subject).toMatch(/^[\x20-\x7e]+$/);
    expect(n?.subject.endsWith('...')).toBe(true);
  });

  it('says when the history write failed or is not configured', () => {
    const report = fixture('failed-purge');
    const failed = renderNotification(report, {
      region: 'us-east-1',
      historyBucket: 'h',
      history: { key: 'reports/k.json', error: 's3://h/reports/k.json: NoSuchBucket: gone' },
    });
    expect(failed?.message).toContain(
      'full report:    NOT written to s3://h/reports/k.json (s3://h/reports/k.json: NoSuchBucket: gone); see the log line "job report"',
    );
    const none = renderNotification(report, { region: 'us-east-1' });
    expect(none?.message).toContain('no run history configured (HISTORY_BUCKET)');
    expect(none?.message).not.toContain('logs:');
  });

  it('never carries a password hash or a private key, even when an error message quotes one', () => {
    const report = fixture('failed-purge');
    const hash = '$2y$05$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY0';
    const key = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB0cjW7x\n-----END EC PRIVATE KEY-----';
    const leaky = {
      ...report,
      actions: [
        {
          type: 'install-htpasswd',
          target: 'i-1',
          reason: `render alice:${hash}`,
          status: 'failed',
          error: `ParameterValue password=hunter2 ${key}`,
        },
        ...report.actions,
      ],
    };
    const n = renderNotification(leaky, where(report, 'f'));
    expect(findSecrets(`${n?.subject}\n${n?.message}`)).toEqual([]);
    expect(n?.message).not.toContain('hunter2');
    expect(n?.message).toContain('[redacted bcrypt hash]');
    expect(n?.message).toContain('[redacted private key]');
  });

  it('links Logs Insights to the run: its log group, its correlation id, a minute either side', () => {
    const url = logsInsightsUrl('eu-west-1', '/aws/lambda/f', {
      startedAt: '2026-11-23T03:00:00.000Z',
      finishedAt: '2026-11-23T03:00:04.000Z',
      correlationId: 'abc',
    });
    const fragment = decodeURIComponent(url.split('#logsV2:logs-insights')[1]?.replace(/\$/g, '%') ?? '');
    expect(fragment.startsWith('?queryDetail=~(end~')).toBe(true);
    const values = decodeURIComponent(fragment.replace(/\*/g, '%'));
    expect(values).toContain("'2026-11-23T03:01:04.000Z~start~'2026-11-23T02:59:00.000Z");
    expect(values).toContain('| filter correlationId = "abc" |');
    expect(values).toContain("~source~(~'/aws/lambda/f))");
  });
});
