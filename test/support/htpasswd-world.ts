import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetObjectCommand, ListObjectsV2Command, NoSuchKey, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import {
  GetCommandInvocationCommand,
  GetParametersByPathCommand,
  InvalidInstanceId,
  InvocationDoesNotExist,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { sha256Hex } from '../../shared/htpasswd.ts';

/**
 * A small fake of what sync-htpasswd talks to, on aws-sdk-client-mock: SSM parameters, the published S3
 * object, the ASG, EC2's launch times, and instances that run the htpasswd document the way install-htpasswd.sh does (report:
 * `current sha256=`; install: verify the sha256 against the object, then `previous`/`installed`). Tests assert
 * on the resulting state (what each instance serves, what is published), not only on calls.
 *
 * S3 answers as it does to the deployed sync-htpasswd role: its s3:ListBucket carries an `s3:prefix` condition
 * (the object key), and S3 tells NoSuchKey from AccessDenied only to a caller allowed ListBucket for the GetObject
 * request itself (which has no prefix), so a GetObject of the missing object is a 403 AccessDenied; a listing is
 * allowed only with Prefix = the key. `state.listBucket = 'bucket'` is a caller with plain ListBucket (moto).
 */

/** The object key every test publishes to (HTPASSWD_OBJECT_KEY in the tests' environment). */
export const OBJECT_KEY = 'auth/htpasswd';

const accessDenied = (): S3ServiceException =>
  new S3ServiceException({ name: 'AccessDenied', message: 'Access Denied', $fault: 'client', $metadata: { httpStatusCode: 403 } });

export type InstanceBehaviour = 'ok' | 'fail-install' | 'fail-all' | 'unregistered' | 'no-invocation' | 'slow' | 'hung-report';

export interface FakeInstance {
  served: string | null;
  behaviour: InstanceBehaviour;
  lifecycle?: string;
  /** Default: a day ago (long past SSM_REGISTRATION_GRACE). */
  launchTime?: Date;
}

export const DAY_AGO = (): Date => new Date(Date.now() - 86_400_000);

export interface SentCommand {
  commandId: string;
  mode: string;
  sha256: string;
  source: string;
  instanceIds: string[];
  maxConcurrency: string | undefined;
  maxErrors: string | undefined;
  documentName: string | undefined;
}

export function htpasswdWorld() {
  const ssm = mockClient(SSMClient);
  const s3 = mockClient(S3Client);
  const asg = mockClient(AutoScalingClient);
  const ec2 = mockClient(EC2Client);
  const state = {
    parameters: [] as { Name: string; Type: string; Value: string }[],
    object: undefined as { body: string; metadata: Record<string, string> } | undefined,
    instances: new Map<string, FakeInstance>(),
    commands: [] as SentCommand[],
    polls: new Map<string, number>(),
    /** Called on PutObject before the new body lands (e.g. an instance that booted on the old file joins the group). */
    onPublish: undefined as (() => void) | undefined,
    /** What the caller may list: only Prefix = the key (the deployed role), or the whole bucket. */
    listBucket: 'prefix' as 'prefix' | 'bucket',
    /** The object exists but GetObject is denied anyway (e.g. a KMS key the role cannot use). */
    denyGet: false,
  };

  function reset(): void {
    ssm.reset();
    s3.reset();
    asg.reset();
    ec2.reset();
    state.parameters = [];
    state.object = undefined;
    state.instances.clear();
    state.commands = [];
    state.polls.clear();
    state.onPublish = undefined;
    state.listBucket = 'prefix';
    state.denyGet = false;

    ssm.on(GetParametersByPathCommand).callsFake((input: { NextToken?: string; MaxResults?: number }) => {
      const start = Number(input.NextToken ?? 0);
      const size = input.MaxResults ?? 10;
      const page = state.parameters.slice(start, start + size);
      const next = start + size < state.parameters.length ? String(start + size) : undefined;
      return { Parameters: page, ...(next ? { NextToken: next } : {}) };
    });
    s3.on(GetObjectCommand).callsFake(() => {
      if (state.denyGet) throw accessDenied();
      if (!state.object && state.listBucket === 'prefix') throw accessDenied();
      if (!state.object) throw new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} });
      const body = state.object.body;
      return { Body: { transformToString: async () => body }, Metadata: { ...state.object.metadata } };
    });
    s3.on(ListObjectsV2Command).callsFake((input: { Prefix?: string; MaxKeys?: number }) => {
      if (state.listBucket === 'prefix' && input.Prefix !== OBJECT_KEY) throw accessDenied();
      const keys = state.object && OBJECT_KEY.startsWith(input.Prefix ?? '') ? [OBJECT_KEY] : [];
      const listed = keys.slice(0, input.MaxKeys ?? 1000);
      return { KeyCount: listed.length, IsTruncated: false, ...(listed.length > 0 ? { Contents: listed.map((Key) => ({ Key })) } : {}) };
    });
    s3.on(PutObjectCommand).callsFake((input: { Body: string; Metadata?: Record<string, string> }) => {
      state.onPublish?.();
      state.object = { body: String(input.Body), metadata: { ...input.Metadata } };
      return { ETag: '"etag"' };
    });
    asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: { AutoScalingGroupNames?: string[] }) => ({
      AutoScalingGroups: (input.AutoScalingGroupNames ?? []).includes('registry-asg')
        ? [
            {
              AutoScalingGroupName: 'registry-asg',
              Instances: [...state.instances].map(([InstanceId, i]) => ({ InstanceId, LifecycleState: i.lifecycle ?? 'InService' })),
            },
          ]
        : [],
    }));
    ec2.on(DescribeInstancesCommand).callsFake((input: { Filters?: { Name?: string; Values?: string[] }[] }) => {
      const ids = input.Filters?.find((f) => f.Name === 'instance-id')?.Values ?? [];
      const found = ids.flatMap((id) => {
        const i = state.instances.get(id);
        return i ? [{ InstanceId: id, LaunchTime: i.launchTime ?? DAY_AGO() }] : [];
      });
      return { Reservations: [{ Instances: found }] };
    });
    ssm
      .on(SendCommandCommand)
      .callsFake(
        (input: {
          InstanceIds: string[];
          Parameters: Record<string, string[]>;
          MaxConcurrency?: string;
          MaxErrors?: string;
          DocumentName?: string;
        }) => {
          if (input.InstanceIds.some((id) => state.instances.get(id)?.behaviour === 'unregistered' || !state.instances.has(id))) {
            throw new InvalidInstanceId({ message: 'Instances not in a valid state for account', $metadata: {} });
          }
          const commandId = `cmd-${state.commands.length + 1}`;
          state.commands.push({
            commandId,
            mode: input.Parameters.Mode?.[0] ?? 'install',
            sha256: input.Parameters.Sha256?.[0] ?? '-',
            source: input.Parameters.Source?.[0] ?? '',
            instanceIds: [...input.InstanceIds],
            maxConcurrency: input.MaxConcurrency,
            maxErrors: input.MaxErrors,
            documentName: input.DocumentName,
          });
          return { Command: { CommandId: commandId } };
        },
      );
    ssm.on(GetCommandInvocationCommand).callsFake((input: { CommandId: string; InstanceId: string }) => {
      const command = state.commands.find((c) => c.commandId === input.CommandId);
      const instance = state.instances.get(input.InstanceId);
      if (!command || !instance || !command.instanceIds.includes(input.InstanceId) || instance.behaviour === 'no-invocation') {
        throw new InvocationDoesNotExist({ message: '', $metadata: {} });
      }
      const key = `${input.CommandId}/${input.InstanceId}`;
      const polls = (state.polls.get(key) ?? 0) + 1;
      state.polls.set(key, polls);
      if (instance.behaviour === 'slow' && polls < 3) return { Status: polls === 1 ? 'Pending' : 'InProgress' };
      if (instance.behaviour === 'hung-report' && command.mode === 'report') return { Status: 'InProgress' };
      const failing = instance.behaviour === 'fail-all' || (instance.behaviour === 'fail-install' && command.mode === 'install');
      if (failing) {
        return {
          Status: 'Failed',
          StatusDetails: 'Failed',
          StandardOutputContent: '',
          StandardErrorContent: 'aws: error\ninstall-htpasswd: download of s3://x failed (old file kept)\n',
        };
      }
      const current = instance.served === null ? 'none' : sha256Hex(instance.served);
      if (command.mode === 'report') return { Status: 'Success', StandardOutputContent: `current sha256=${current}\n` };
      const body = state.object?.body ?? '';
      if (!state.object || (command.sha256 !== '-' && sha256Hex(body) !== command.sha256)) {
        return { Status: 'Failed', StatusDetails: 'Failed', StandardErrorContent: 'install-htpasswd: sha256 mismatch (old file kept)\n' };
      }
      instance.served = body;
      return { Status: 'Success', StandardOutputContent: `previous sha256=${current}\ninstalled sha256=${sha256Hex(body)}\n` };
    });
  }

  function parameter(user: string, value: string, type = 'String', path = '/registry/users/'): void {
    state.parameters.push({ Name: `${path}${user}`, Type: type, Value: value });
  }

  function instance(id: string, over: Partial<FakeInstance> = {}): FakeInstance {
    const i = { served: null, behaviour: 'ok' as const, ...over };
    state.instances.set(id, i);
    return i;
  }

  return { ssm, s3, asg, ec2, state, reset, parameter, instance };
}
