import { runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';

/**
 * The synthesized template's IAM, evaluated offline by @cloud-copilot/iam-simulate (test/infra/iam-matrix.test.ts):
 * every role with the policies CloudFormation would attach to it (its inline and attached policies, and the AWS
 * managed ones by a copy below), intrinsics resolved to stand-in physical names in one account and region, and
 * the bucket policy of the bucket a request names. What a test asks is what AWS would answer that role.
 */

export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface Resource {
  Type: string;
  Properties?: Record<string, Json>;
}
export interface CfnTemplate {
  Resources: Record<string, Resource>;
}
interface PolicyDocument {
  Version?: string;
  Statement: Json[];
}

/**
 * The AWS managed policies the stack attaches, as AWS publishes them (policy versions current in 2026-12): the
 * template names them only by ARN. A new one fails the matrix until it is copied here.
 */
const AWS_MANAGED: Record<string, PolicyDocument> = {
  'service-role/AWSLambdaBasicExecutionRole': {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'], Resource: '*' }],
  },
  AmazonSSMManagedInstanceCore: {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: [
          'ssm:DescribeAssociation',
          'ssm:GetDeployablePatchSnapshotForInstance',
          'ssm:GetDocument',
          'ssm:DescribeDocument',
          'ssm:GetManifest',
          'ssm:GetParameter',
          'ssm:GetParameters',
          'ssm:ListAssociations',
          'ssm:ListInstanceAssociations',
          'ssm:PutInventory',
          'ssm:PutComplianceItems',
          'ssm:PutConfigurePackageResult',
          'ssm:UpdateAssociationStatus',
          'ssm:UpdateInstanceAssociationStatus',
          'ssm:UpdateInstanceInformation',
        ],
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: [
          'ssmmessages:CreateControlChannel',
          'ssmmessages:CreateDataChannel',
          'ssmmessages:OpenControlChannel',
          'ssmmessages:OpenDataChannel',
        ],
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: [
          'ec2messages:AcknowledgeMessage',
          'ec2messages:DeleteMessage',
          'ec2messages:FailMessage',
          'ec2messages:GetEndpoint',
          'ec2messages:GetMessages',
          'ec2messages:SendReply',
        ],
        Resource: '*',
      },
    ],
  },
  CloudWatchAgentServerPolicy: {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: [
          'cloudwatch:PutMetricData',
          'ec2:DescribeVolumes',
          'ec2:DescribeTags',
          'logs:PutLogEvents',
          'logs:PutRetentionPolicy',
          'logs:DescribeLogStreams',
          'logs:DescribeLogGroups',
          'logs:CreateLogStream',
          'logs:CreateLogGroup',
          'xray:PutTraceSegments',
          'xray:PutTelemetryRecords',
          'xray:GetSamplingRules',
          'xray:GetSamplingTargets',
          'xray:GetSamplingStatisticSummaries',
        ],
        Resource: '*',
      },
      { Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: 'arn:aws:ssm:*:*:parameter/AmazonCloudWatch-*' },
    ],
  },
};

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': REGION,
  'AWS::AccountId': ACCOUNT,
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': 'registry-fleet',
};

export interface Role {
  /** The role's logical id (its name and ARN here). */
  readonly id: string;
  readonly arn: string;
  /** The services that may assume it. */
  readonly assumedBy: readonly string[];
  /** The function that runs as it, if one does (its FunctionName). */
  readonly functionName: string | undefined;
  readonly policies: readonly { name: string; policy: PolicyDocument }[];
}

export interface Request {
  readonly action: string;
  readonly resource: string;
  readonly context?: Readonly<Record<string, string | string[]>>;
}

export type Decision = 'Allowed' | 'ImplicitlyDenied' | 'ExplicitlyDenied';

/** The template's IAM with stand-in names: `name(prefix)`/`arn(prefix)` give what a resource resolves to. */
export class StackIam {
  readonly roles: readonly Role[];
  private readonly resources: Record<string, Resource>;

  constructor(template: CfnTemplate) {
    this.resources = template.Resources;
    this.roles = Object.entries(this.resources)
      .filter(([, r]) => r.Type === 'AWS::IAM::Role')
      .map(([id]) => this.role(id));
  }

  /** The one resource whose logical id starts with `prefix` (and has `type`, if given). */
  logicalId(prefix: string, type?: string): string {
    const ids = Object.entries(this.resources)
      .filter(([id, r]) => id.startsWith(prefix) && (type === undefined || r.Type === type))
      .map(([id]) => id);
    if (ids.length !== 1) throw new Error(`expected one resource ${prefix}* ${type ?? ''}, found ${ids.length}: ${ids.join(', ')}`);
    return ids[0] as string;
  }

  /** What `Ref` of the resource gives (a name, or an ARN for the types whose Ref is one). */
  ref(prefix: string, type?: string): string {
    return this.resolve({ Ref: this.logicalId(prefix, type) });
  }

  arn(prefix: string, type?: string): string {
    return this.resolve({ 'Fn::GetAtt': [this.logicalId(prefix, type), 'Arn'] });
  }

  has(prefix: string, type?: string): boolean {
    return Object.entries(this.resources).some(([id, r]) => id.startsWith(prefix) && (type === undefined || r.Type === type));
  }

  roleOfFunction(functionName: string): Role | undefined {
    return this.roles.find((r) => r.functionName === functionName);
  }

  rolesAssumedBy(service: string): Role[] {
    return this.roles.filter((r) => r.assumedBy.includes(service));
  }

  /** IAM's answer to `role` making `request` (with TLS; the bucket policy of an S3 resource's bucket applies). */
  async decide(role: Role, request: Request): Promise<Decision> {
    const simulation: Simulation = {
      request: {
        principal: `arn:aws:sts::${ACCOUNT}:assumed-role/${role.id}/matrix`,
        action: request.action,
        resource: { resource: request.resource, accountId: ACCOUNT },
        contextVariables: { 'aws:SecureTransport': 'true', 'aws:PrincipalArn': role.arn, ...request.context },
      },
      identityPolicies: role.policies.map((p) => ({ name: p.name, policy: p.policy })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(this.resourcePolicy(request.resource) ? { resourcePolicy: this.resourcePolicy(request.resource) } : {}),
    };
    const result = await runSimulation(simulation, {});
    if (result.resultType === 'error') {
      throw new Error(`iam-simulate refused ${request.action} on ${request.resource}: ${JSON.stringify(result.errors).slice(0, 600)}`);
    }
    return result.overallResult as Decision;
  }

  private role(id: string): Role {
    const props = this.resources[id]?.Properties ?? {};
    const assume = props.AssumeRolePolicyDocument as unknown as PolicyDocument;
    const assumedBy = assume.Statement.flatMap((s) => {
      const service = ((s as { Principal?: { Service?: Json } }).Principal?.Service ?? []) as Json;
      return [service].flat().map((v) => this.resolve(v));
    });
    const refersToRole = (roles: Json | undefined) => JSON.stringify(roles ?? []).includes(`{"Ref":"${id}"}`);
    const attached = Object.entries(this.resources)
      .filter(([, r]) => (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') && refersToRole(r.Properties?.Roles))
      .map(([pid, r]) => ({ name: pid, policy: this.document(r.Properties?.PolicyDocument) }));
    const inline = ((props.Policies ?? []) as { PolicyName: Json; PolicyDocument: Json }[]).map((p) => ({
      name: this.resolve(p.PolicyName),
      policy: this.document(p.PolicyDocument),
    }));
    const managed = ((props.ManagedPolicyArns ?? []) as Json[]).map((m) => {
      const arn = this.resolve(m);
      const name = /^arn:aws:iam::aws:policy\/(.+)$/.exec(arn)?.[1];
      const policy = name === undefined ? undefined : AWS_MANAGED[name];
      if (!policy) throw new Error(`role ${id}: managed policy ${arn} has no copy in test/support/iam-matrix.ts`);
      return { name: arn, policy };
    });
    const fn = Object.entries(this.resources).find(
      ([, r]) => r.Type === 'AWS::Lambda::Function' && JSON.stringify(r.Properties?.Role) === JSON.stringify({ 'Fn::GetAtt': [id, 'Arn'] }),
    );
    return {
      id,
      arn: `arn:aws:iam::${ACCOUNT}:role/${id}`,
      assumedBy,
      functionName: fn ? this.resolve({ Ref: fn[0] }) : undefined,
      policies: [...managed, ...inline, ...attached],
    };
  }

  /**
   * The policy on the resource itself: a bucket's bucket policy; for a KMS key, the default key policy (the account
   * delegates to IAM, so the role's own policy decides — KMS evaluates no identity policy without a key policy).
   */
  private resourcePolicy(resource: string): PolicyDocument | undefined {
    if (resource.startsWith('arn:aws:kms:')) {
      return {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: 'kms:*', Resource: '*' }],
      };
    }
    return this.bucketPolicy(resource);
  }

  private bucketPolicy(resource: string): PolicyDocument | undefined {
    const bucket = /^arn:aws:s3:::([^/]+)/.exec(resource)?.[1];
    if (bucket === undefined) return undefined;
    const found = Object.values(this.resources).find(
      (r) => r.Type === 'AWS::S3::BucketPolicy' && this.resolve(r.Properties?.Bucket ?? null) === bucket,
    );
    return found ? this.document(found.Properties?.PolicyDocument) : undefined;
  }

  private document(doc: Json | undefined): PolicyDocument {
    return this.resolveDeep(doc ?? null) as unknown as PolicyDocument;
  }

  private resolveDeep(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolveDeep(v));
    if (value && typeof value === 'object') {
      const keys = Object.keys(value);
      if (keys.length === 1 && (keys[0] === 'Ref' || keys[0]?.startsWith('Fn::'))) return this.resolve(value);
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolveDeep(v)]));
    }
    return value;
  }

  /** One intrinsic (Ref, Fn::GetAtt …Arn, Fn::Join, Fn::Select, Fn::Split, Fn::Sub of pseudo parameters) → text. */
  private resolve(value: Json): string {
    if (typeof value === 'string') return value;
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error(`cannot resolve ${JSON.stringify(value)}`);
    const [fn] = Object.keys(value);
    const arg = value[fn as string] as Json;
    if (fn === 'Ref' && typeof arg === 'string') return PSEUDO[arg] ?? this.physical(arg, 'Ref');
    if (fn === 'Fn::GetAtt' && Array.isArray(arg)) return this.physical(String(arg[0]), String(arg[1]));
    if (fn === 'Fn::Join' && Array.isArray(arg)) return (arg[1] as Json[]).map((v) => this.resolve(v)).join(String(arg[0]));
    if (fn === 'Fn::Split' && Array.isArray(arg)) return JSON.stringify(this.resolve(arg[1] as Json).split(String(arg[0])));
    if (fn === 'Fn::Select' && Array.isArray(arg)) {
      const parts = JSON.parse(this.resolve(arg[1] as Json)) as string[];
      return parts[Number(arg[0])] ?? '';
    }
    if (fn === 'Fn::Sub' && typeof arg === 'string')
      return arg.replace(/\$\{([^}]+)\}/g, (_, p: string) => PSEUDO[p] ?? this.physical(p, 'Ref'));
    throw new Error(`cannot resolve ${JSON.stringify(value).slice(0, 200)}`);
  }

  /** A stand-in physical value for `Ref` or `Fn::GetAtt <attribute>` of a resource, by its type. */
  private physical(id: string, attribute: string): string {
    const r = this.resources[id];
    if (!r) throw new Error(`no resource ${id}`);
    const p = r.Properties ?? {};
    const named = (key: string) => (p[key] === undefined ? id : this.resolve(p[key]));
    const at = `${REGION}:${ACCOUNT}`;
    const byType: Record<string, Record<string, () => string>> = {
      'AWS::S3::Bucket': { Ref: () => `bucket-${id.toLowerCase()}`, Arn: () => `arn:aws:s3:::bucket-${id.toLowerCase()}` },
      'AWS::IAM::Role': { Ref: () => id, Arn: () => `arn:aws:iam::${ACCOUNT}:role/${id}` },
      'AWS::Lambda::Function': {
        Ref: () => named('FunctionName'),
        Arn: () => `arn:aws:lambda:${at}:function:${named('FunctionName')}`,
      },
      'AWS::AutoScaling::AutoScalingGroup': { Ref: () => named('AutoScalingGroupName') },
      'AWS::SSM::Document': { Ref: () => named('Name') },
      'AWS::SecretsManager::Secret': { Ref: () => `arn:aws:secretsmanager:${at}:secret:${id}-AbCdEf` },
      'AWS::SNS::Topic': { Ref: () => `arn:aws:sns:${at}:${id}` },
      'AWS::CertificateManager::Certificate': { Ref: () => `arn:aws:acm:${at}:certificate/${id.toLowerCase()}` },
      'AWS::ElasticLoadBalancingV2::Listener': {
        Ref: () => `arn:aws:elasticloadbalancing:${at}:listener/app/registry/0123456789abcdef/${id}`,
      },
      'AWS::StepFunctions::StateMachine': { Ref: () => `arn:aws:states:${at}:stateMachine:${id}` },
      'AWS::Logs::LogGroup': { Ref: () => named('LogGroupName'), Arn: () => `arn:aws:logs:${at}:log-group:${named('LogGroupName')}:*` },
      'AWS::Scheduler::ScheduleGroup': { Ref: () => named('Name') },
    };
    const value = byType[r.Type]?.[attribute];
    if (!value) throw new Error(`no stand-in for ${attribute} of ${id} (${r.Type}): add one in test/support/iam-matrix.ts`);
    return value();
  }
}
