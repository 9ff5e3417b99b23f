import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Template } from 'aws-cdk-lib/assertions';
import { createApp } from '../../infra/app.ts';
import { fakeFunctionsDir } from './support.ts';

/**
 * What docs/operations.md's cost table counts is what the stack synthesizes (the default context, as
 * `npm run synth -- -c domainName=registry.ci.internal`): a job or an alarm added without the docs fails here.
 */
const fake = fakeFunctionsDir();
afterAll(() => fake.remove());

const operations = readFileSync(join(import.meta.dirname, '../../docs/operations.md'), 'utf8');

describe('docs/operations.md cost table', () => {
  it('counts the CloudWatch alarms the default stack creates', () => {
    const { app, stack } = createApp({ context: { functionsDir: fake.dir, domainName: 'registry.ci.internal' } });
    app.synth();
    const alarms = Object.keys(Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm')).length;
    const documented = operations.match(/^\| CloudWatch +\| (\d+) alarms/m)?.[1];
    expect(Number(documented)).toBe(alarms);
  });
});
