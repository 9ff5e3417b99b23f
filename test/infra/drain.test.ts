// Drain before terminate (issue 18, item 2) as the stack declares it: the termination lifecycle hook that holds an
// instance until its registry has no request in flight, the target group's deregistration delay, the instance
// role's one extra permission, and the watcher the user data installs (the script, its unit and its env file).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Match } from 'aws-cdk-lib/assertions';
import type { Template } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createApp } from '../../infra/app.ts';
import { ALB_IDLE_TIMEOUT_SECONDS } from '../../infra/constructs/load-balancer.ts';
import {
  ASSET_FILES,
  DRAIN_HOOK_NAME,
  PATHS,
  REGISTRY_DEBUG_ADDR,
  REGISTRY_PORT,
  USER_DATA_LIMIT,
  readAsset,
  withoutComments,
} from '../../infra/user-data.ts';
import type { CfnTemplate } from '../support/boot-rehearsal.ts';
import { launchTemplateUserData, resolveIntrinsics } from '../support/boot-rehearsal.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

const fake = fakeFunctionsDir();
const tmp = mkdtempSync(join(tmpdir(), 'drain-infra-'));
afterAll(() => {
  fake.remove();
  rmSync(tmp, { recursive: true, force: true });
});
const domainName = 'registry.corp.internal';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;
const resourcesOf = (t: Template) => t.toJSON().Resources as Resources;
const ofType = (t: Template, type: string) => Object.entries(resourcesOf(t)).filter(([, r]) => r.Type === type);
const onlyId = (t: Template, type: string): string => {
  const found = ofType(t, type);
  expect(found, type).toHaveLength(1);
  return found[0]?.[0] as string;
};

/** The user data as an instance gets it, with every CloudFormation reference replaced by `<Ref>`. */
function userDataOf(t: Template): string {
  return resolveIntrinsics(
    launchTemplateUserData(t.toJSON() as CfnTemplate),
    (ref, attribute) => `<${ref}${attribute ? `.${attribute}` : ''}>`,
  );
}

const quote = (path: string) => path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
/** The content of the heredoc (plain, or base64 of gzip) that writes `path` in the user data. */
function fileIn(script: string, path: string): string {
  const plain = new RegExp(`^cat >${quote(path)} <<'REGISTRY_FLEET_EOF'\\n([\\s\\S]*?)^REGISTRY_FLEET_EOF$`, 'm').exec(script);
  if (plain?.[1] !== undefined) return plain[1];
  const packed = new RegExp(`^base64 -d <<'REGISTRY_FLEET_EOF' \\| gunzip >${quote(path)}\\n([\\s\\S]*?)^REGISTRY_FLEET_EOF$`, 'm').exec(
    script,
  );
  if (packed?.[1] === undefined) throw new Error(`user data does not write ${path}`);
  return gunzipSync(Buffer.from(packed[1].replace(/\s+/g, ''), 'base64')).toString('utf8');
}

/** The unit's `Environment=KEY=value` lines. */
const envOf = (unit: string): Record<string, string> =>
  Object.fromEntries([...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => [m[1] as string, m[2] as string]));

describe('drain before terminate, with the default context', () => {
  const { template: t } = synthFleet({ domainName }, fake.dir); // cdk-nag on: throws on any unacknowledged finding
  const asg = onlyId(t, 'AWS::AutoScaling::AutoScalingGroup');
  const userData = userDataOf(t);

  it('a termination lifecycle hook on the group: heartbeat = drain timeout + margin, CONTINUE when it runs out', () => {
    expect(ALB_IDLE_TIMEOUT_SECONDS).toBe(900);
    t.resourceCountIs('AWS::AutoScaling::LifecycleHook', 1);
    t.hasResourceProperties('AWS::AutoScaling::LifecycleHook', {
      AutoScalingGroupName: { Ref: asg },
      LifecycleHookName: DRAIN_HOOK_NAME,
      LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
      HeartbeatTimeout: 900 + 120,
      DefaultResult: 'CONTINUE',
      // Completed from the instance itself: no notification target, no role for one.
      NotificationTargetARN: Match.absent(),
      RoleARN: Match.absent(),
    });
  });

  it('the target group keeps draining connections as long as the drain timeout (the idle timeout by default)', () => {
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 5000,
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: String(ALB_IDLE_TIMEOUT_SECONDS) }]),
    });
  });

  it('the instance role may complete lifecycle actions of its own group only', () => {
    const roleId = Object.entries(resourcesOf(t)).find(
      ([, r]) => r.Type === 'AWS::IAM::Role' && JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('ec2.amazonaws.com'),
    )?.[0];
    const statements = ofType(t, 'AWS::IAM::Policy')
      .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
      .flatMap(
        ([, p]) =>
          (p.Properties.PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown; Effect: string }[] }).Statement,
      );
    const lifecycle = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('autoscaling:')));
    expect(lifecycle).toEqual([
      {
        Effect: 'Allow',
        Action: 'autoscaling:CompleteLifecycleAction',
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':autoscaling:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':autoScalingGroup:*:autoScalingGroupName/',
              { Ref: asg },
            ],
          ],
        },
      },
    ]);
  });

  it('the user data installs the watcher (its comments left in the repository), shellcheck-clean, as a unit started before the bootstrap', () => {
    const script = fileIn(userData, PATHS.drain);
    expect(script).toBe(withoutComments(readAsset(ASSET_FILES.drain)));
    expect(script.split('\n').filter((l) => l.trimStart().startsWith('#'))).toEqual(['#!/bin/bash']);
    const file = join(tmp, 'drain-registry.sh');
    writeFileSync(file, script);
    const r = spawnSync('shellcheck', ['--shell=bash', '--severity=style', file], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);

    const unit = fileIn(userData, PATHS.drainUnit).split('\n');
    // Its log lines (stderr inherits stdout) go where the agent already ships the boot log (stream <instance>/bootstrap).
    for (const line of [
      `ExecStart=${PATHS.drain}`,
      `StandardOutput=append:${PATHS.bootstrapLog}`,
      'Restart=on-failure',
      'StartLimitIntervalSec=0',
      'WantedBy=multi-user.target',
    ]) {
      expect(unit).toContain(line);
    }
    // Started before the registry exists: an instance terminated mid-boot is released at once (nothing in flight).
    const start = userData.indexOf(`systemctl enable ${PATHS.drainUnitName}\nsystemctl start --no-block ${PATHS.drainUnitName}\n`);
    expect(start).toBeGreaterThan(-1);
    expect(start).toBeLessThan(userData.indexOf(`systemctl start --no-block ${PATHS.bootstrapUnitName}`));
  });

  it("the watcher's settings: the hook and the timeouts; its defaults are the registry's main and loopback metrics ports", () => {
    expect(envOf(fileIn(userData, PATHS.drainUnit))).toEqual({
      DRAIN_HOOK_NAME,
      DRAIN_TIMEOUT_SECONDS: '900',
      DRAIN_HEARTBEAT_SECONDS: '1020',
      DRAIN_POLL_SECONDS: '5',
    });
    const script = readAsset(ASSET_FILES.drain);
    expect(script).toContain(`REGISTRY_URL=\${REGISTRY_URL:-http://127.0.0.1:${REGISTRY_PORT}/}`);
    expect(script).toContain(`REGISTRY_METRICS_URL=\${REGISTRY_METRICS_URL:-http://${REGISTRY_DEBUG_ADDR}/metrics}`);
  });

  it('stays under the EC2 user data limit with long real values in place of the references (not only their tokens)', () => {
    const long = (n: number) => 'x'.repeat(n);
    const values: Record<string, string> = { 'AWS::Region': 'ap-southeast-2' };
    const real = (ref: string): string => {
      const type = resourcesOf(t)[ref]?.Type;
      if (values[ref] !== undefined) return values[ref];
      // Longest physical names for a 30-character stack name; a wait-condition handle is a presigned S3 URL.
      if (type === 'AWS::S3::Bucket') return long(63);
      if (type === 'AWS::SecretsManager::Secret') return `arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:${long(70)}`;
      if (type === 'AWS::Logs::LogGroup') return long(75);
      if (type === 'AWS::CloudFormation::WaitConditionHandle') return `https://${long(560)}`;
      throw new Error(`no long value for ${ref} (${type ?? 'unknown'}): add one here`);
    };
    const resolved = resolveIntrinsics(launchTemplateUserData(t.toJSON() as CfnTemplate), real);
    expect(Buffer.byteLength(resolved)).toBeLessThan(USER_DATA_LIMIT);
  });

  it('the registry serves its Prometheus metrics on loopback only', () => {
    const config = parse(fileIn(userData, PATHS.config)) as { http: { addr: string; debug: { addr: string; prometheus: object } } };
    expect(config.http.debug).toEqual({ addr: '127.0.0.1:5001', prometheus: { enabled: true, path: '/metrics' } });
    expect(config.http.addr).toBe(':5000');
  });
});

describe('drainTimeoutSeconds context', () => {
  it('moves the hook heartbeat, the deregistration delay and the watcher together', () => {
    const { template: t } = synthFleet({ domainName, drainTimeoutSeconds: 300 }, fake.dir);
    t.hasResourceProperties('AWS::AutoScaling::LifecycleHook', { HeartbeatTimeout: 420, DefaultResult: 'CONTINUE' });
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '300' }]),
    });
    expect(envOf(fileIn(userDataOf(t), PATHS.drainUnit))).toMatchObject({ DRAIN_TIMEOUT_SECONDS: '300', DRAIN_HEARTBEAT_SECONDS: '420' });
  });

  it.each([['0'], ['3601'], ['15m']])('refuses %s, naming the key and the expected form', (value) => {
    expect(() => createApp({ context: { domainName, functionsDir: fake.dir, drainTimeoutSeconds: value } })).toThrow(
      new RegExp(`context drainTimeoutSeconds: expected a whole number from 30 to 3600 \\(got "${value}"\\)`),
    );
  });
});
