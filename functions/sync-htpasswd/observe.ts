import { DescribeAutoScalingGroupsCommand, type AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { paginateDescribeInstances, type EC2Client } from '@aws-sdk/client-ec2';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { paginateGetParametersByPath, type SSMClient } from '@aws-sdk/client-ssm';
import { formatDuration } from '../../shared/duration.ts';
import { describeError, errorName } from '../../shared/errors.ts';
import { parseHtpasswd, sha256Hex } from '../../shared/htpasswd.ts';
import type { RunContext } from '../../shared/job.ts';
import { runCommand } from '../../shared/ssm-commands.ts';
import type { SyncHtpasswdConfig } from './config.ts';
import type { InstanceDrift, SyncScope, SyncState } from './model.ts';
import { parseScriptOutput, reportRequest } from './script.ts';
import { resolveUsers, type UserParameter } from './users.ts';

/**
 * Reads, mapped to plain types (no SDK type leaves this file): the users under the path (decrypted, resolved
 * to hashes at once: no password leaves observe), the published object, the ASG's InService instances with
 * their launch times (ec2:DescribeInstances: the ASG API has none) and, unless the run forces a full
 * distribution, the sha256 each instance serves (the SSM document in `report` mode: read-only on the instance,
 * so a dry run does it too), all within DRIFT_CHECK_BUDGET from the start of observe. Nothing here is logged.
 */

export interface SyncClients {
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  readonly autoScaling: AutoScalingClient;
  readonly ec2: EC2Client;
}

export async function observe(
  clients: SyncClients,
  scope: SyncScope,
  ctx: Pick<RunContext<SyncHtpasswdConfig>, 'config' | 'signal'>,
): Promise<SyncState> {
  const { config, signal } = ctx;
  const deadline = Date.now() + config.driftCheckBudgetMs; // a budget of its own, well inside the Lambda's time
  if (scope.outOfScope !== undefined) return { kind: 'out-of-scope', parameter: scope.outOfScope };
  const parameters = await readUserParameters(clients.ssm, config.parameterPath, signal);
  const published = await readPublished(clients.s3, config.bucket, config.objectKey, signal);
  const resolution = await resolveUsers(parameters, { cost: config.bcryptCost, published: published?.entries ?? new Map() });
  const base = {
    kind: 'in-scope' as const,
    parameters: parameters.length,
    resolution,
    published: published && { sha256: published.sha256, metadataSha256: published.metadataSha256, users: published.entries.size },
  };
  // The plan refuses such a user set; spend no fleet calls on it.
  if (resolution.problems.length > 0 || (resolution.users.length === 0 && !config.allowEmptyUserSet)) {
    return { ...base, instances: [], instancesNotInService: 0, driftChecked: false };
  }

  const fleet = await readFleet(clients.autoScaling, config.asgName, signal);
  const launched = fleet.inService.length > 0 ? await readLaunchTimes(clients.ec2, fleet.inService, signal) : new Map<string, string>();
  const instance = (instanceId: string) => ({ instanceId, launchTime: launched.get(instanceId) });
  if (scope.forced || fleet.inService.length === 0) {
    return { ...base, instances: fleet.inService.map(instance), instancesNotInService: fleet.notInService, driftChecked: false };
  }
  const drift = await checkDrift(clients.ssm, config, fleet.inService, { signal, deadline });
  return {
    ...base,
    instances: fleet.inService.map((id) => ({ ...instance(id), drift: drift.get(id) ?? { state: 'unknown', reason: 'no report' } })),
    instancesNotInService: fleet.notInService,
    driftChecked: true,
  };
}

export async function readUserParameters(ssm: SSMClient, path: string, signal: AbortSignal): Promise<UserParameter[]> {
  const parameters: UserParameter[] = [];
  const pages = paginateGetParametersByPath(
    { client: ssm },
    { Path: path, Recursive: true, WithDecryption: true, MaxResults: 10 },
    { abortSignal: signal }, // passed on to every client.send of the paginator
  );
  for await (const page of pages) {
    for (const p of page.Parameters ?? []) {
      if (p.Name && p.Value !== undefined) parameters.push({ name: p.Name, type: p.Type ?? 'String', value: p.Value });
    }
  }
  return parameters;
}

async function readPublished(
  s3: S3Client,
  bucket: string,
  key: string,
  signal: AbortSignal,
): Promise<{ sha256: string; metadataSha256: string | undefined; entries: Map<string, string> } | undefined> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    const body = (await res.Body?.transformToString('utf-8')) ?? '';
    return { sha256: sha256Hex(body), metadataSha256: res.Metadata?.sha256, entries: parseHtpasswd(body) };
  } catch (error) {
    if (errorName(error) === 'NoSuchKey') return undefined;
    // S3 answers NoSuchKey only to a caller allowed ListBucket for this request; the role may list this one prefix
    // only, so a missing object is a 403. Only a listing that shows the key absent makes it "missing": a real denial
    // on an existing object must fail the run, never lead to a "first" publish over it.
    if (errorName(error) === 'AccessDenied' && !(await objectListed(s3, bucket, key, signal))) return undefined;
    if (errorName(error) === 'AccessDenied') {
      throw new Error(`s3://${bucket}/${key} exists but GetObject is denied: ${describeError(error)} (nothing was published)`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** Whether the key exists, by a listing of exactly its prefix (what the role's s3:prefix condition allows). */
async function objectListed(s3: S3Client, bucket: string, key: string, signal: AbortSignal): Promise<boolean> {
  // The key itself sorts first among the keys it prefixes, so one key answers.
  try {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key, MaxKeys: 1 }), { abortSignal: signal });
    return (res.Contents ?? []).some((o) => o.Key === key);
  } catch (error) {
    throw new Error(
      `cannot tell whether s3://${bucket}/${key} exists: GetObject is denied and ListObjectsV2 (Prefix ${key}) failed: ` +
        `${describeError(error)} (nothing was published)`,
      { cause: error },
    );
  }
}

export async function readFleet(
  asg: AutoScalingClient,
  name: string,
  signal: AbortSignal,
): Promise<{ inService: string[]; notInService: number }> {
  const res = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }), { abortSignal: signal });
  const group = res.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === name);
  if (!group) throw new Error(`Auto Scaling group ${name} not found (ASG_NAME)`);
  const instances = group.Instances ?? [];
  const inService = instances
    .filter((i) => i.LifecycleState === 'InService' && i.InstanceId)
    .map((i) => i.InstanceId as string)
    .sort();
  return { inService, notInService: instances.length - inService.length };
}

/** Launch time by instance id (filter, not InstanceIds: an instance gone meanwhile is simply absent, no error). */
export async function readLaunchTimes(ec2: EC2Client, instanceIds: readonly string[], signal: AbortSignal): Promise<Map<string, string>> {
  const launched = new Map<string, string>();
  for (let i = 0; i < instanceIds.length; i += 200) {
    const pages = paginateDescribeInstances(
      { client: ec2 },
      { Filters: [{ Name: 'instance-id', Values: instanceIds.slice(i, i + 200) }], MaxResults: 1000 },
      { abortSignal: signal },
    );
    for await (const page of pages) {
      for (const inst of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
        if (inst.InstanceId && inst.LaunchTime) launched.set(inst.InstanceId, new Date(inst.LaunchTime).toISOString());
      }
    }
  }
  return launched;
}

async function checkDrift(
  ssm: SSMClient,
  config: SyncHtpasswdConfig,
  instanceIds: readonly string[],
  { signal, deadline }: { signal: AbortSignal; deadline: number },
): Promise<Map<string, InstanceDrift>> {
  const results = await runCommand(ssm, reportRequest(config, instanceIds.length), instanceIds, {
    signal,
    waitMs: config.commandWaitMs,
    pollIntervalMs: config.pollIntervalMs,
    deadline,
  });
  const drift = new Map<string, InstanceDrift>();
  for (const id of instanceIds) {
    const r = results.get(id);
    if (!r)
      drift.set(id, { state: 'unknown', reason: `not checked within DRIFT_CHECK_BUDGET ${formatDuration(config.driftCheckBudgetMs)}` });
    else if (r.state === 'not-registered') drift.set(id, { state: 'not-registered', reason: r.error });
    else if (r.state !== 'success') drift.set(id, { state: 'unknown', reason: r.error });
    else {
      const { current } = parseScriptOutput(r.output);
      drift.set(
        id,
        current === undefined
          ? { state: 'unknown', reason: 'the report printed no "current sha256=" line' }
          : { state: 'reported', sha256: current },
      );
    }
  }
  return drift;
}
