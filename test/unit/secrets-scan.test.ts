// No password, password hash or private key in any event or report fixture, nor in the notification rendered
// from any report fixture (the integration tests scan the history objects real runs write: history.test.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderNotification, type NotifyReport } from '../../shared/notify.ts';
import { findSecrets, redactSecrets } from '../../shared/redact.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const jsonFiles = (dir: string): string[] =>
  readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.json'))
    .map((e) => join(e.parentPath, e.name));

describe('secrets scan', () => {
  const events = jsonFiles('events');
  const reports = jsonFiles('test/fixtures/reports');

  it('finds the fixtures it scans', () => {
    expect(events.length).toBeGreaterThan(10);
    expect(reports.length).toBeGreaterThanOrEqual(2);
  });

  it.each([...events, ...reports].map((f) => [f.slice(ROOT.length + 1), f]))('%s has no secret', (_name, file) => {
    expect(findSecrets(readFileSync(file, 'utf8'))).toEqual([]);
  });

  it.each(reports.map((f) => [f.slice(ROOT.length + 1), f]))('the notification of %s has no secret', (_name, file) => {
    const report = JSON.parse(readFileSync(file, 'utf8')) as NotifyReport;
    const n = renderNotification({ ...report, metrics: { ReplacementStalled: 1 } }, { region: 'us-east-1', logGroupName: '/aws/lambda/x' });
    expect(n).toBeDefined();
    expect(findSecrets(`${n?.subject}\n${n?.message}\n${JSON.stringify(n?.attributes)}`)).toEqual([]);
  });

  it.each([
    ['bcrypt hash', 'alice:$2y$05$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY0'],
    ['apr1/md5-crypt hash', 'bob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/'],
    ['htpasswd SHA hash', 'carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g='],
    ['private key', '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----'],
    ['password value', '{"password":"hunter2"}'],
  ])('recognises and redacts a %s', (kind, text) => {
    expect(findSecrets(text)).toContain(kind);
    expect(findSecrets(redactSecrets(text))).toEqual([]);
  });
});
