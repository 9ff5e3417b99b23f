/**
 * `npm run demo`: the control plane doing its job on real parts, with no AWS account and no Docker engine.
 *
 * moto_server is the embedded AWS; two real `docker-registry` processes on loopback are the fleet (they share
 * moto's S3 bucket, one http.secret and one htpasswd auth directory, configured by the fleet's own renderer).
 * Every job runs from its built bundle (dist/functions/<job>/index.mjs, the `handler` Lambda runs) in a fresh
 * Node process, with sample events from events/. Stand-ins, each said where it is used: moto cannot run SSM
 * commands (the demo runs the document's script itself), has no load balancer to shake hands with (a local TLS
 * server serves the listener's certificate), and lacks DescribeInstanceRefreshes (a proxy answers "none").
 */
import { DEFAULT_FLEET_TAG_KEY, KEEP_TAG, MARK_TAG } from '../shared/fleet-tags.ts';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ACMClient, AddTagsToCertificateCommand, DescribeCertificateCommand } from '@aws-sdk/client-acm';
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import {
  CreateLaunchTemplateCommand,
  CreateVolumeCommand,
  DescribeImagesCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  DescribeListenersCommand,
  DescribeTargetGroupsCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import bcrypt from 'bcryptjs';
import { startAlbStandIn, type AlbStandIn } from '../local/alb-stand-in.ts';
import { makeCertificate } from '../local/certs.ts';
import { awsClients, createLoadBalancer, importCertificate } from '../local/elb.ts';
import {
  cancelUpload,
  completeUpload,
  patchUpload,
  MEDIA_TYPES,
  pullBlob,
  pushBlob,
  pushImage,
  sha256Digest,
  startUpload,
  type BasicAuth,
  type OpenUpload,
  type PushedImage,
} from '../local/registry.ts';
import { startLocalFleet, type LocalFleet } from './lib/local-fleet.ts';
import { startMotoGaps, type MotoGaps } from './lib/moto-gaps.ts';
import { formatReport } from './lib/report-table.ts';
import { startS3Proxy, type S3Proxy } from '../local/s3-proxy.ts';

const ROOT = join(import.meta.dirname, '..');
const DOMAIN = 'registry.demo.test';
const FLEET = 'registry-demo';
const USERS_PATH = '/registry/users/';
/** The job's smallest max age; an S3 proxy makes the demo's abandoned uploads look older (moto stamps every time "now"). */
const UPLOAD_MAX_AGE = '1h';
const LOOKS_OLDER_MS = 2 * 3_600_000;
const HISTORY_BUCKET = 'registry-demo-history';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = '') => console.log(s);
let failures = 0;

async function step(title: string, fn: () => Promise<void>): Promise<void> {
  say(`\n${bold(`▶ ${title}`)}`);
  try {
    await fn();
  } catch (error) {
    failures += 1;
    say(`  ✗ ${(error as Error).message}`);
  }
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  say(`  ✓ ${what}`);
}

// ----------------------------------------------------------------------------------------------------------
// Running a job bundle the way Lambda does

interface Report {
  job: string;
  trigger: { kind: string };
  dryRun: boolean;
  observed: Record<string, unknown>;
  actions: { type: string; target: string; reason: string; status: string; error?: string; detail?: Record<string, unknown> }[];
  summary: { planned: number; applied: number; skipped: number; failed: number };
  truncated: boolean;
  details?: Record<string, unknown>;
}

let scratch = '';
let jobEnv: Record<string, string> = {};

/** Runs dist/functions/<job>/index.mjs in a fresh Node process with `env`, returns its report. */
async function invoke(job: string, eventFile: string, env: Record<string, string>): Promise<Report> {
  const out = join(scratch, `${job}-${Date.now()}.json`);
  const child = spawn(
    process.execPath,
    [join(ROOT, 'scripts/lib/run-bundle.mjs'), join(ROOT, 'dist/functions', job, 'index.mjs'), join(ROOT, 'events', eventFile), out, '900'],
    { env: { PATH: process.env.PATH ?? '', ...jobEnv, POWERTOOLS_SERVICE_NAME: job, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let logs = '';
  child.stdout.on('data', (c: Buffer) => (logs += c.toString()));
  child.stderr.on('data', (c: Buffer) => (logs += c.toString()));
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
  const result = JSON.parse(await readFile(out, 'utf8').catch(() => '{"ok":false,"error":{"message":"no result"}}')) as
    { ok: true; report: Report } | { ok: false; error: { name?: string; message?: string } };
  say(`  $ invoke ${job} with events/${eventFile}`);
  if (result.ok && code === 0) {
    say(formatReport(result.report));
    return result.report;
  }
  // A failed run logs its report before it throws: show it, then fail the step.
  const logged = logs.split('\n').find((l) => l.includes('"job report"'));
  if (logged) say(formatReport((JSON.parse(logged) as { report: Report }).report));
  throw new Error(`${job} failed: ${result.ok ? `exit ${code}` : `${result.error.name}: ${result.error.message}`}`);
}

// ----------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  let fleet: LocalFleet | undefined;
  let gaps: MotoGaps | undefined;
  let standIn: AlbStandIn | undefined;
  let aging: S3Proxy | undefined;
  const cleanup = async (): Promise<void> => {
    await standIn?.close().catch(() => undefined);
    await gaps?.close().catch(() => undefined);
    await fleet?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    say('\ninterrupted: stopping everything the demo started');
    void cleanup().finally(() => process.exit(130));
  });

  try {
    scratch = await mkdtemp(join(tmpdir(), 'registry-demo-'));
    say(bold('Registry control plane demo: moto_server as AWS, two real docker-registry 2.8 instances on loopback'));

    process.env.MOTO_ACM_VALIDATION_WAIT = '1'; // requested certificates turn ISSUED after 1 s
    fleet = await startLocalFleet({ bucket: FLEET });
    const f = fleet;
    gaps = await startMotoGaps(f.moto.endpoint);
    const [a, b] = f.registries as [LocalFleet['registries'][0], LocalFleet['registries'][0]];
    const admin: BasicAuth = f.admin;
    say(`  moto_server ${f.moto.endpoint} (pid ${f.moto.pid}) · registry A ${a.url} (pid ${a.pid}) · registry B ${b.url} (pid ${b.pid})`);

    const cfg = { region: 'us-east-1', endpoint: f.moto.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
    const ec2 = new EC2Client(cfg);
    const ssm = new SSMClient(cfg);
    const autoScaling = new AutoScalingClient(cfg);
    const elbv2 = new ElasticLoadBalancingV2Client(cfg);
    const acm = new ACMClient(cfg);
    jobEnv = {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_ENDPOINT_URL: gaps.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      POWERTOOLS_LOG_LEVEL: 'WARN',
      POWERTOOLS_METRICS_DISABLED: 'true',
      POWERTOOLS_METRICS_NAMESPACE: 'RegistryControlPlane',
      // Every run writes its whole report to the run history, as the stack's functions do.
      HISTORY_BUCKET,
    };
    await f.s3.send(new CreateBucketCommand({ Bucket: HISTORY_BUCKET }));

    // ------------------------------------------------------------------------------------------------
    const alice = randomBytes(9).toString('base64url');
    const seeded = {
      listenerArn: '',
      hostedZoneId: '',
      targetGroupArn: '',
      oldCertArn: '',
      volumes: [] as string[],
      keep: '',
      foreign: '',
    };
    await step('1. Seed moto with the fleet’s resources', async () => {
      await ssm.send(new PutParameterCommand({ Name: `${USERS_PATH}admin`, Type: 'String', Value: bcrypt.hashSync(admin.password, 5) }));
      say(`  users under ${USERS_PATH}: admin (bcrypt hash, String)`);

      const expiring = makeCertificate({ cn: DOMAIN, days: 10 });
      seeded.oldCertArn = await importCertificate(acm, expiring);
      // As the stack's own certificate is: tagged with the fleet tag, so the job may delete it once replaced.
      await acm.send(
        new AddTagsToCertificateCommand({ CertificateArn: seeded.oldCertArn, Tags: [{ Key: DEFAULT_FLEET_TAG_KEY, Value: FLEET }] }),
      );
      const lb = await createLoadBalancer(awsClients(f.moto.endpoint), seeded.oldCertArn, 'demo.test');
      seeded.listenerArn = lb.httpsListenerArn;
      seeded.hostedZoneId = lb.hostedZoneId;
      say(`  HTTPS listener with an imported certificate for ${DOMAIN} that expires in 10 days`);

      const tg = await elbv2.send(new DescribeTargetGroupsCommand({ Names: ['registry'] }));
      seeded.targetGroupArn = tg.TargetGroups?.[0]?.TargetGroupArn as string;
      const subnets = (await ec2.send(new DescribeSubnetsCommand({}))).Subnets?.map((s) => s.SubnetId as string) ?? [];
      const ami = (await ec2.send(new DescribeImagesCommand({}))).Images?.[0]?.ImageId as string;
      await ec2.send(
        new CreateLaunchTemplateCommand({ LaunchTemplateName: FLEET, LaunchTemplateData: { ImageId: ami, InstanceType: 't4g.small' } }),
      );
      await autoScaling.send(
        new CreateAutoScalingGroupCommand({
          AutoScalingGroupName: FLEET,
          MinSize: 2,
          MaxSize: 4,
          DesiredCapacity: 2,
          LaunchTemplate: { LaunchTemplateName: FLEET, Version: '$Latest' },
          VPCZoneIdentifier: subnets.slice(0, 2).join(','),
          TargetGroupARNs: [seeded.targetGroupArn],
          Tags: [{ Key: DEFAULT_FLEET_TAG_KEY, Value: FLEET, PropagateAtLaunch: true }],
        }),
      );
      say(`  Auto Scaling group ${FLEET}: 2 instances registered in the target group`);

      const tagged = (tags: Record<string, string>) => [
        { ResourceType: 'volume' as const, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
      ];
      for (const size of [50, 100, 200]) {
        const v = await ec2.send(
          new CreateVolumeCommand({
            AvailabilityZone: 'us-east-1a',
            Size: size,
            VolumeType: 'gp3',
            TagSpecifications: tagged({ [DEFAULT_FLEET_TAG_KEY]: FLEET }),
          }),
        );
        seeded.volumes.push(v.VolumeId as string);
      }
      seeded.keep = (
        await ec2.send(
          new CreateVolumeCommand({
            AvailabilityZone: 'us-east-1a',
            Size: 30,
            VolumeType: 'gp3',
            TagSpecifications: tagged({ [DEFAULT_FLEET_TAG_KEY]: FLEET, [KEEP_TAG]: 'true' }),
          }),
        )
      ).VolumeId as string;
      seeded.foreign = (await ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 20, VolumeType: 'gp3' })))
        .VolumeId as string;
      say(`  EBS volumes: 3 orphaned fleet volumes (350 GiB), 1 fleet volume tagged keep, 1 volume of someone else`);
    });

    // ------------------------------------------------------------------------------------------------
    const images: { repo: string; image: PushedImage; layers: Buffer[] }[] = [];
    const abandoned: OpenUpload[] = [];
    let fresh: { upload: OpenUpload; rest: Buffer; digest: string } | undefined;
    let abandonedBefore = new Date();
    await step('2. Push images through the two registries and abandon some uploads', async () => {
      for (const [i, repo] of ['library/nginx', 'library/alpine', 'team/backend/api'].entries()) {
        const via = i % 2 === 0 ? a : b;
        const layers = [randomBytes(256 * 1024 + i), randomBytes(64 * 1024 + i)];
        images.push({ repo, image: await pushImage(via.url, repo, 'v1', { layers, auth: admin }), layers });
        say(`  pushed ${repo}:v1 through registry ${via === a ? 'A' : 'B'} (2 layers)`);
      }
      // One layer pushed in chunks that alternate instances: the shared http.secret makes B accept A's upload state.
      const big = randomBytes(3 * 1024 * 1024);
      let upload = await startUpload(a.url, 'library/nginx', { auth: admin });
      upload = await patchUpload(upload, big.subarray(0, 1024 * 1024), { auth: admin });
      upload = await patchUpload(
        { ...upload, location: upload.location.replace(a.url, b.url) },
        big.subarray(1024 * 1024, 2 * 1024 * 1024),
        { auth: admin },
      );
      await completeUpload(upload.location.replace(b.url, a.url), big.subarray(2 * 1024 * 1024), sha256Digest(big), { auth: admin });
      const back = await pullBlob(b.url, 'library/nginx', sha256Digest(big), { auth: admin });
      check(back.equals(big), 'a 3 MiB layer uploaded A → B → A (shared http.secret) pulls back byte-identical');

      for (const repo of ['library/nginx', 'library/alpine', 'team/backend/api']) {
        abandoned.push(await startUpload(a.url, repo, { bytes: randomBytes(100_000), auth: admin }));
      }
      const cancelled = await startUpload(b.url, 'library/alpine', { auth: admin });
      await cancelUpload(cancelled.location, { auth: admin });
      say(`  abandoned 3 uploads mid-push and cancelled 1 (its orphan keeps a hashstates key but no startedat)`);
      abandonedBefore = new Date(Date.now() + 1);
      say(
        `  the purge will see them through an S3 proxy that makes everything written until now look 2 h old (UPLOAD_MAX_AGE=${UPLOAD_MAX_AGE})`,
      );
      await new Promise((r) => setTimeout(r, 1_500)); // startedat has whole seconds: the fresh upload starts after the cut
      const rest = randomBytes(50_000);
      const head = randomBytes(50_000);
      const started = await startUpload(b.url, 'library/nginx', { bytes: head, auth: admin });
      fresh = { upload: started, rest, digest: sha256Digest(Buffer.concat([head, rest])) };
      say('  started 1 fresh upload that is still in flight');
    });

    // ------------------------------------------------------------------------------------------------
    say(`\n${bold('3. Invoke each job through its bundle')}`);

    const uploadsRoot = 'docker/registry/v2/repositories/';
    const listUploads = async () => {
      const keys =
        (await f.s3.send(new ListObjectsV2Command({ Bucket: f.bucket, Prefix: uploadsRoot }))).Contents?.map((o) => o.Key as string) ?? [];
      const dirs = new Set(keys.filter((k) => k.includes('/_uploads/')).map((k) => k.replace(/(\/_uploads\/[^/]+)\/.*$/, '$1')));
      const mpus = (await f.s3.send(new ListMultipartUploadsCommand({ Bucket: f.bucket, Prefix: uploadsRoot }))).Uploads?.length ?? 0;
      return { dirs, mpus };
    };
    const before = await listUploads();

    await step('purge-stale-uploads (scheduled run)', async () => {
      aging = await startS3Proxy(f.moto.endpoint);
      aging.shiftTimes({ byMs: LOOKS_OLDER_MS, before: abandonedBefore, parts: true });
      const env = { REGISTRY_BUCKET: f.bucket, UPLOAD_MAX_AGE, AWS_ENDPOINT_URL: aging.endpoint };
      const report = await invoke('purge-stale-uploads', 'schedule.json', env).finally(() => aging?.stop());
      const after = await listUploads();
      check(
        before.dirs.size === 5 && after.dirs.size === 1,
        `upload directories in S3: ${before.dirs.size} before, ${after.dirs.size} after (the fresh one)`,
      );
      check(after.mpus === 1, `open multipart uploads: ${before.mpus} before, ${after.mpus} after (their parts no longer cost money)`);
      check(report.summary.failed === 0, 'no action failed');
      const { upload, rest, digest } = fresh as NonNullable<typeof fresh>;
      await completeUpload(upload.location, rest, digest, { auth: admin });
      check(true, 'the fresh upload still completes');
      for (const { repo, image, layers } of images) {
        for (const [registry, name] of [
          [a, 'A'],
          [b, 'B'],
        ] as const) {
          const pulled = await Promise.all(image.layers.map((l) => pullBlob(registry.url, repo, l.digest, { auth: admin })));
          if (!pulled.every((p, i) => p.equals(layers[i] as Buffer))) throw new Error(`${repo} does not pull byte-identical from ${name}`);
        }
      }
      check(true, 'every pushed image still pulls byte-identical from both instances');
    });

    await step('sync-htpasswd (a new user appears under the SSM path)', async () => {
      await ssm.send(new PutParameterCommand({ Name: `${USERS_PATH}alice`, Type: 'SecureString', Value: alice }));
      say(`  $ aws ssm put-parameter --name ${USERS_PATH}alice --type SecureString --value '…'`);
      const unauthorised = await fetch(`${a.url}/v2/`, { headers: basic('alice', alice) });
      check(unauthorised.status === 401, 'alice gets 401 before the sync');
      // The two local registries are not EC2 instances SSM could command, so this job's group is empty here
      // and the demo runs the SSM document's script itself, as the agent would on each instance.
      await autoScaling.send(
        new CreateAutoScalingGroupCommand({
          AutoScalingGroupName: `${FLEET}-local`,
          MinSize: 0,
          MaxSize: 0,
          DesiredCapacity: 0,
          LaunchTemplate: { LaunchTemplateName: FLEET, Version: '$Latest' },
          AvailabilityZones: ['us-east-1a'],
        }),
      );
      await invoke('sync-htpasswd', 'parameter-change.json', {
        HTPASSWD_PARAMETER_PATH: USERS_PATH,
        REGISTRY_BUCKET: f.bucket,
        HTPASSWD_OBJECT_KEY: 'auth/htpasswd',
        ASG_NAME: `${FLEET}-local`,
        SYNC_DOCUMENT_NAME: 'registry-htpasswd-sync',
        BCRYPT_COST: '5',
      });
      const object = await f.s3.send(new GetObjectCommand({ Bucket: f.bucket, Key: 'auth/htpasswd' }));
      const sha256 = createHash('sha256')
        .update(Buffer.from(await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()))
        .digest('hex');
      const url = await getSignedUrl(f.s3, new GetObjectCommand({ Bucket: f.bucket, Key: 'auth/htpasswd' }), { expiresIn: 300 });
      say('  running infra/assets/install-htpasswd.sh on the instances (what the SSM document does):');
      say(
        `    ${(await runScript(join(ROOT, 'infra/assets/install-htpasswd.sh'), [url, sha256, f.authDir])).trim().split('\n').join('\n    ')}`,
      );
      for (const [registry, name] of [
        [a, 'A'],
        [b, 'B'],
      ] as const) {
        const res = await fetch(`${registry.url}/v2/`, { headers: basic('alice', alice) });
        check(res.status === 200, `alice logs in on registry ${name} (HTTP ${res.status}), no restart`);
      }
      check(
        a.pid === f.registries[0]?.pid && b.pid === f.registries[1]?.pid && (await alive(a.pid)) && (await alive(b.pid)),
        `both registries kept their PIDs (${a.pid}, ${b.pid})`,
      );
    });

    await step('replace-unhealthy-instances (the unhealthy-hosts alarm fires)', async () => {
      const report = await invoke('replace-unhealthy-instances', 'alarm-state-change.json', {
        ASG_NAME: FLEET,
        TARGET_GROUP_ARN: seeded.targetGroupArn,
        GRACE_PERIOD: '0s',
      });
      check(
        report.summary.applied === 0 && report.summary.failed === 0,
        'every target is healthy (moto reports them so): nothing replaced, nothing churned',
      );
    });

    await step('purge-disk-volumes (daily run)', async () => {
      const report = await invoke('purge-disk-volumes', 'schedule.json', {
        FLEET_TAG_VALUE: FLEET,
        ASG_NAME: FLEET,
        PRUNE_DOCUMENT_NAME: 'registry-prune',
        VOLUME_GRACE: '24h',
      });
      const vols =
        (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [...seeded.volumes, seeded.keep, seeded.foreign] }))).Volumes ?? [];
      const marked = vols.filter((v) => v.Tags?.some((t) => t.Key === MARK_TAG)).map((v) => v.VolumeId);
      check(
        marked.length === 3 && seeded.volumes.every((id) => marked.includes(id)),
        'the 3 orphaned fleet volumes are marked; a run 24 h later deletes them if still orphaned',
      );
      check(
        !marked.includes(seeded.keep) && !marked.includes(seeded.foreign),
        'the keep-tagged volume and the foreign volume are untouched',
      );
      check(report.summary.failed === 0, 'no action failed');
    });

    await step('rotate-certificates (daily runs until the rotation is proven)', async () => {
      standIn = await startAlbStandIn(elbv2, acm, seeded.listenerArn);
      say(`  (a local TLS server stands in for the load balancer: it serves the listener's current certificate)`);
      const env = {
        LISTENER_ARN: seeded.listenerArn,
        DOMAIN_NAME: DOMAIN,
        HOSTED_ZONE_ID: seeded.hostedZoneId,
        CERTIFICATE_MODE: 'acm',
        FLEET_TAG_VALUE: FLEET,
        HANDSHAKE_HOST: '127.0.0.1',
        HANDSHAKE_PORT: String(standIn.port),
        HANDSHAKE_WAIT: '5s',
      };
      const defaultCert = async () =>
        (await elbv2.send(new DescribeListenersCommand({ ListenerArns: [seeded.listenerArn] }))).Listeners?.[0]?.Certificates?.[0]
          ?.CertificateArn;
      for (let run = 1; run <= 5 && (await defaultCert()) === seeded.oldCertArn; run++) {
        await invoke('rotate-certificates', 'schedule.json', env);
        await new Promise((r) => setTimeout(r, 1500)); // ACM (moto) issues requested certificates after 1 s
      }
      const now = await defaultCert();
      const detail = (await acm.send(new DescribeCertificateCommand({ CertificateArn: now }))).Certificate;
      const days = Math.round(((detail?.NotAfter?.getTime() ?? 0) - Date.now()) / 86_400_000);
      check(now !== seeded.oldCertArn, `the listener now serves a new certificate valid for ${days} days`);
      check(standIn.served().length >= 2, `the TLS handshake saw the new serial (${standIn.served().at(-1)})`);
      await invoke('rotate-certificates', 'schedule.json', env);
    });

    await step('collect-garbage (an image deleted, a push racing the sweep)', async () => {
      await collectGarbageStep(f, a, admin);
    });

    await step(`4. What the jobs did, from the run history (s3://${HISTORY_BUCKET})`, async () => {
      say('  $ npm run history -- --since 1h');
      const table = await runHistory(['--since', '1h'], { ...jobEnv, AWS_ENDPOINT_URL: f.moto.endpoint });
      say(table.trimEnd());
      const jobs = [
        'purge-stale-uploads',
        'sync-htpasswd',
        'replace-unhealthy-instances',
        'purge-disk-volumes',
        'rotate-certificates',
        'collect-garbage',
      ];
      check(
        jobs.every((j) => table.includes(` ${j} `)),
        'every job run above left its report in the run history',
      );
      say('  $ npm run history -- purge-stale-uploads --action delete-upload --json');
      const deletes = JSON.parse(
        await runHistory(['purge-stale-uploads', '--action', 'delete-upload', '--json'], { ...jobEnv, AWS_ENDPOINT_URL: f.moto.endpoint }),
      ) as Report[];
      check(
        deletes.length === 1 && deletes[0]?.actions.every((a) => a.type === 'delete-upload') === true,
        `the purge run's ${deletes[0]?.actions.length ?? 0} upload deletions, every one`,
      );
    });

    say(
      failures === 0 ? `\n${bold('✓ demo finished: every step passed')}` : `\n${bold(`✗ demo finished with ${failures} failed step(s)`)}`,
    );
  } catch (error) {
    failures += 1;
    say(`\n✗ demo stopped: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await cleanup();
  }
  process.exitCode = failures === 0 ? 0 : 1;
}

const V2 = 'docker/registry/v2';
const blobKey = (digest: string): string => `${V2}/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`;

/** Every key under a repository's directory, with its content (links are tiny). */
async function repositoryKeys(f: LocalFleet, repo: string): Promise<Map<string, Buffer>> {
  const listed = await f.s3.send(new ListObjectsV2Command({ Bucket: f.bucket, Prefix: `${V2}/repositories/${repo}/` }));
  const out = new Map<string, Buffer>();
  for (const o of listed.Contents ?? []) {
    const got = await f.s3.send(new GetObjectCommand({ Bucket: f.bucket, Key: o.Key as string }));
    out.set(o.Key as string, Buffer.from(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()));
  }
  return out;
}

async function exists(f: LocalFleet, key: string): Promise<boolean> {
  return f.s3.send(new HeadObjectCommand({ Bucket: f.bucket, Key: key })).then(
    () => true,
    () => false,
  );
}

/**
 * collect-garbage on the local fleet: gc/app:old and gc/app:new share a base layer; old is deleted the way the
 * registry's DELETE deletes it; another client pushes gc/raced:v1 re-using old's first layer (mounted, HEAD says it
 * exists, never re-uploaded), and its manifest lands right after the sweep deleted that layer. The job must reclaim
 * old's unique blobs, keep the shared one and restore the raced one at once.
 */
async function collectGarbageStep(f: LocalFleet, a: LocalFleet['registries'][0], admin: BasicAuth): Promise<void> {
  // As the stack's bucket: versioned, so every delete the job makes is a delete marker it (or you) can remove.
  await f.s3.send(new PutBucketVersioningCommand({ Bucket: f.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  const [shared, raced, unique] = [randomBytes(80_000), randomBytes(60_000), randomBytes(40_000)];
  const old = await pushImage(a.url, 'gc/app', 'old', { layers: [shared, raced, unique], auth: admin });
  const kept = await pushImage(a.url, 'gc/app', 'new', { layers: [shared, randomBytes(20_000)], auth: admin });
  const [sharedDigest, racedDigest, uniqueDigest] = old.layers.map((l) => l.digest) as [string, string, string];
  // DELETE /v2/gc/app/manifests/<old> as distribution does it: the revision link and the tag go, the blobs stay.
  const hex = old.manifestDigest.slice(7);
  await f.s3.send(
    new DeleteObjectsCommand({
      Bucket: f.bucket,
      Delete: {
        Objects: [
          `${V2}/repositories/gc/app/_manifests/revisions/sha256/${hex}/link`,
          `${V2}/repositories/gc/app/_manifests/tags/old/current/link`,
          `${V2}/repositories/gc/app/_manifests/tags/old/index/sha256/${hex}/link`,
        ].map((Key) => ({ Key })),
      },
    }),
  );
  say('  pushed gc/app:old (shared, raced, unique layers) and gc/app:new (shared + its own), then deleted gc/app:old');
  const cut = new Date(Date.now() + 1);
  await new Promise((r) => setTimeout(r, 1_100)); // LastModified has whole seconds: what follows is after the cut
  // The racing client: mounts the raced layer from gc/app (HEAD says it exists: not re-uploaded), pushes its config and
  // manifest. Its repository keys are held back and land only once the sweep has deleted the layer.
  const mount = await fetch(`${a.url}/v2/gc/raced/blobs/uploads/?mount=${racedDigest}&from=gc/app`, {
    method: 'POST',
    headers: basic(admin.username, admin.password),
  });
  await mount.body?.cancel();
  check(mount.status === 201, `gc/raced mounts ${racedDigest.slice(0, 19)}… from gc/app (201: the layer exists, no upload)`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [racedDigest] } }));
  const configBlob = await pushBlob(a.url, 'gc/raced', config, { auth: admin });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.manifest,
      config: { mediaType: MEDIA_TYPES.config, size: configBlob.size, digest: configBlob.digest },
      layers: [{ mediaType: MEDIA_TYPES.layer, size: raced.length, digest: racedDigest }],
    }),
  );
  const put = await fetch(`${a.url}/v2/gc/raced/manifests/v1`, {
    method: 'PUT',
    headers: { ...basic(admin.username, admin.password), 'content-type': MEDIA_TYPES.manifest },
    body: new Uint8Array(manifest),
  });
  await put.body?.cancel();
  check(put.status === 201, 'gc/raced:v1 accepted by the registry (its layer verified as present)');
  const racedKeys = await repositoryKeys(f, 'gc/raced');
  await f.s3.send(new DeleteObjectsCommand({ Bucket: f.bucket, Delete: { Objects: [...racedKeys.keys()].map((Key) => ({ Key })) } }));

  // Everything written before the cut looks 2 h old to the job (past GC_GRACE=1h); the raced push is newer.
  const aged = await startS3Proxy(f.moto.endpoint);
  aged.shiftTimes({ byMs: LOOKS_OLDER_MS, before: cut });
  let landed = false;
  const race = (async () => {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && (await exists(f, blobKey(racedDigest)))) await new Promise((r) => setTimeout(r, 50));
    for (const [Key, Body] of racedKeys) await f.s3.send(new PutObjectCommand({ Bucket: f.bucket, Key, Body }));
    landed = true;
  })();
  const env = { REGISTRY_BUCKET: f.bucket, GC_GRACE: '1h', GC_SETTLE: '5s', AWS_ENDPOINT_URL: aged.endpoint };
  const report = await invoke('collect-garbage', 'collect-garbage/manual.json', env).finally(() => aged.stop());
  await race;
  const restored = ((report.details?.restored as string[] | undefined) ?? []).filter((t) => t.includes(racedDigest));
  check(landed, "gc/raced:v1's manifest and links landed right after the sweep deleted its layer");
  check(report.summary.failed === 0, 'no action failed');
  const gone = [uniqueDigest, old.config.digest, old.manifestDigest];
  check(
    !(await Promise.all(gone.map((d) => exists(f, blobKey(d))))).some(Boolean),
    "gc/app:old's unique layer, config and manifest are reclaimed",
  );
  const pulled = await Promise.all(kept.layers.map((l) => pullBlob(a.url, 'gc/app', l.digest, { auth: admin })));
  check(
    pulled[0]?.equals(shared) === true && kept.layers[0]?.digest === sharedDigest,
    'the shared layer is kept: gc/app:new pulls byte-identical',
  );
  check(restored.length > 0, `the raced layer is reported restored (${restored.length} action)`);
  const back = await pullBlob(a.url, 'gc/raced', racedDigest, { auth: admin });
  check(back.equals(raced), 'gc/raced:v1 pulls byte-identical: the delete marker was removed at once');
}

function basic(username: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
}

async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `npm run history -- …` (scripts/history.ts), as an operator runs it, against the demo's moto. */
async function runHistory(args: string[], env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'scripts/history.ts'), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
  if (code !== 0) throw new Error(`npm run history exited ${code}: ${err.trim()}`);
  return out;
}

async function runScript(script: string, args: string[]): Promise<string> {
  const child = spawn('bash', [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
  if (code !== 0) throw new Error(`${script} exited ${code}: ${out.trim()}`);
  return out;
}

await main();
