import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { renderRegistryConfig } from './registry-config.ts';
import type { RegistryConfigOptions } from './registry-config.ts';

/**
 * The instance side of the fleet, rendered by pure functions (no CDK, no env): the user data writes the
 * on-instance files (PREAMBLE "On-instance contract") and runs infra/assets/bootstrap-registry.sh.
 * Values may be CDK tokens (bucket name, region, secret ARN): they are placed as plain strings, never encoded.
 */

export const ASSETS_DIR = join(import.meta.dirname, 'assets');

/** On-instance paths (the contract shared with the jobs and the SSM documents). */
export const PATHS = {
  registryDir: '/etc/docker/registry',
  config: '/etc/docker/registry/config.yml',
  authDir: '/etc/docker/registry/auth',
  /** Where the container sees the auth directory (mounted read-only as a directory). */
  containerHtpasswd: '/auth/htpasswd',
  fleetEnv: '/etc/registry-fleet/fleet.env',
  bootstrap: '/usr/local/sbin/registry-bootstrap.sh',
  installHtpasswd: '/usr/local/bin/install-htpasswd.sh',
  pruneDocker: '/usr/local/bin/prune-docker.sh',
  cloudWatchAgentConfig: '/opt/aws/amazon-cloudwatch-agent/etc/registry-fleet.json',
  bootstrapUnit: '/etc/systemd/system/registry-bootstrap.service',
  bootstrapUnitName: 'registry-bootstrap.service',
  bootstrapLog: '/var/log/registry-bootstrap.log',
} as const;

export const REGISTRY_PORT = 5000;
export const REGISTRY_DEBUG_ADDR = '127.0.0.1:5001';
/** EC2 user data limit (raw bytes, before base64). */
export const USER_DATA_LIMIT = 16_384;

/** The scripts shipped in infra/assets/ (read at synth time). */
export interface FleetScripts {
  bootstrap: string;
  installHtpasswd: string;
  pruneDocker: string;
}

export const ASSET_FILES = {
  bootstrap: 'bootstrap-registry.sh',
  installHtpasswd: 'install-htpasswd.sh',
  pruneDocker: 'prune-docker.sh',
} as const satisfies Record<keyof FleetScripts, string>;

/** Reads one file of infra/assets/; a missing file fails synth with a message saying who provides it. */
export function readAsset(name: string, dir: string = ASSETS_DIR): string {
  const path = join(dir, name);
  if (!existsSync(path)) {
    throw new Error(`missing fleet asset ${path}: the CDK app embeds it into the user data and SSM documents; restore it (git checkout -- infra/assets/${name})`);
  }
  return readFileSync(path, 'utf8');
}

export function readFleetScripts(dir: string = ASSETS_DIR): FleetScripts {
  return {
    bootstrap: readAsset(ASSET_FILES.bootstrap, dir),
    installHtpasswd: readAsset(ASSET_FILES.installHtpasswd, dir),
    pruneDocker: readAsset(ASSET_FILES.pruneDocker, dir),
  };
}

/** The registry configuration every instance runs (instance role credentials; the secret comes from the env). */
export function fleetRegistryConfigOptions(o: { bucket: string; region: string }): RegistryConfigOptions {
  return {
    bucket: o.bucket,
    region: o.region,
    httpAddr: `:${REGISTRY_PORT}`,
    htpasswdPath: PATHS.containerHtpasswd,
    htpasswdRealm: 'registry',
    debugAddr: REGISTRY_DEBUG_ADDR,
    storageHealthCheck: { interval: '10s', threshold: 3 },
    logLevel: 'info',
    logFormatter: 'json',
  };
}

/**
 * CloudWatch agent: `disk_used_percent` of `/` per instance (namespace CWAgent) with the fleet's Auto Scaling
 * group as a dimension, so several fleets in one account and region never mix; the per-instance series
 * (InstanceId, fstype, path) purge-disk-volumes reads is kept as an aggregation. Ships the boot logs to `logGroup`.
 */
export function renderCloudWatchAgentConfig(o: { logGroup?: string } = {}): string {
  const config = {
    agent: { metrics_collection_interval: 60, run_as_user: 'root' },
    metrics: {
      namespace: 'CWAgent',
      append_dimensions: { InstanceId: '${aws:InstanceId}', AutoScalingGroupName: '${aws:AutoScalingGroupName}' },
      aggregation_dimensions: [['InstanceId', 'fstype', 'path']],
      metrics_collected: {
        disk: {
          resources: ['/'],
          measurement: [{ name: 'used_percent', rename: 'disk_used_percent', unit: 'Percent' }],
          drop_device: true,
          metrics_collection_interval: 60,
        },
      },
    },
    ...(o.logGroup === undefined
      ? {}
      : {
          logs: {
            logs_collected: {
              files: {
                collect_list: [
                  { file_path: PATHS.bootstrapLog, log_group_name: o.logGroup, log_stream_name: '{instance_id}/bootstrap' },
                  { file_path: '/var/log/cloud-init-output.log', log_group_name: o.logGroup, log_stream_name: '{instance_id}/cloud-init' },
                ],
              },
            },
          },
        }),
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/**
 * The bootstrap as a systemd unit: a failed boot is run again after RestartSec for as long as it fails (no start
 * limit), and a reboot runs it again. Output goes to the journal and, through tee, to the log file the agent ships.
 */
export function renderBootstrapUnit(): string {
  return [
    '[Unit]',
    'Description=registry fleet bootstrap: docker, htpasswd, http.secret, then the registry container',
    'Wants=network-online.target',
    'After=network-online.target',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=/bin/bash -c 'set -o pipefail; ${PATHS.bootstrap} 2>&1 | tee -a ${PATHS.bootstrapLog}'`,
    'Restart=on-failure',
    'RestartSec=10s',
    'TimeoutStartSec=infinity',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export interface UserDataOptions {
  region: string;
  bucket: string;
  /** Pinned image reference (`registry:2.8.3`). */
  registryImage: string;
  /** Secrets Manager secret holding `http.secret`. */
  httpSecretArn: string;
  /**
   * ECR pull-through cache (registryImage is then the cached repository): the registry host the boot logs in to,
   * and the image by tag it pulls when the digest is not cached yet (ECR fills a cache by tag only).
   */
  pullThrough?: { registryHost: string; warmImage: string };
  /** `s3://bucket/key` of the rendered htpasswd (published by sync-htpasswd). */
  htpasswdSource: string;
  /** How often a boot without the htpasswd looks for it again (default 10 s). */
  htpasswdPollSeconds?: number;
  /** The log group of the registry's access log and the boot logs. */
  logGroup: string;
  /** The stack's wait-condition handle URL (signals SUCCESS once serving; FAILURE with the reason when late). */
  waitHandleUrl?: string;
  /** After this long without serving, the instance signals FAILURE with what blocks it (default 900 s). */
  bootReportAfterSeconds?: number;
  scripts: FleetScripts;
}

const DELIMITER = 'REGISTRY_FLEET_EOF';
const SAFE_VALUE = /^[^'\n]*$/;

function heredoc(path: string, mode: string, content: string): string {
  if (content.split('\n').includes(DELIMITER)) throw new Error(`user data: ${path} contains the line ${DELIMITER}`);
  const body = content.endsWith('\n') ? content : `${content}\n`;
  return `cat >${path} <<'${DELIMITER}'\n${body}${DELIMITER}\nchmod ${mode} ${path}\n`;
}

/**
 * Writes a static script gzipped and base64-encoded: the three scripts are most of the user data, and EC2 caps
 * it at 16 KiB. Only files without CloudFormation tokens can go this way (a token inside would be encoded away).
 */
function gzipped(path: string, mode: string, content: string): string {
  const lines = gzipSync(Buffer.from(content), { level: 9 }).toString('base64').match(/.{1,76}/g) ?? [];
  return [`base64 -d <<'${DELIMITER}' | gunzip >${path}`, ...lines, DELIMITER, `chmod ${mode} ${path}`, ''].join('\n');
}

function envFile(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([key, value]) => {
      if (!SAFE_VALUE.test(value)) throw new Error(`user data: ${key} must not contain a quote or a newline`);
      return `${key}='${value}'`;
    })
    .join('\n');
}

/** The whole user data script (bash). Pure; throws if a value cannot be placed safely or it is too large. */
export function renderUserData(o: UserDataOptions): string {
  const poll = o.htpasswdPollSeconds ?? 10;
  if (!Number.isInteger(poll) || poll < 1) throw new Error('user data: htpasswdPollSeconds must be a whole number ≥ 1');
  const reportAfter = o.bootReportAfterSeconds ?? 900;
  if (!Number.isInteger(reportAfter) || reportAfter < 60) throw new Error('user data: bootReportAfterSeconds must be a whole number ≥ 60');
  const config = renderRegistryConfig(fleetRegistryConfigOptions({ bucket: o.bucket, region: o.region }));
  const fleetEnv = envFile({
    AWS_REGION: o.region,
    REGISTRY_IMAGE: o.registryImage,
    HTTP_SECRET_ARN: o.httpSecretArn,
    HTPASSWD_SOURCE: o.htpasswdSource,
    HTPASSWD_POLL_SECONDS: String(poll),
    LOG_GROUP: o.logGroup,
    BOOT_REPORT_AFTER_SECONDS: String(reportAfter),
    ...(o.waitHandleUrl === undefined ? {} : { WAIT_HANDLE_URL: o.waitHandleUrl }),
    ...(o.pullThrough === undefined ? {} : { ECR_REGISTRY: o.pullThrough.registryHost, REGISTRY_IMAGE_WARM: o.pullThrough.warmImage }),
  });
  const script = [
    '#!/bin/bash',
    `# Registry fleet instance: writes the on-instance files, then starts the bootstrap unit (log: ${PATHS.bootstrapLog}).`,
    'set -euo pipefail',
    'umask 022',
    `install -d -m 0755 /etc/registry-fleet ${PATHS.registryDir} ${PATHS.authDir} /opt/aws/amazon-cloudwatch-agent/etc`,
    heredoc(PATHS.fleetEnv, '0644', fleetEnv),
    heredoc(PATHS.config, '0644', config),
    heredoc(PATHS.cloudWatchAgentConfig, '0644', renderCloudWatchAgentConfig({ logGroup: o.logGroup })),
    gzipped(PATHS.installHtpasswd, '0755', o.scripts.installHtpasswd),
    gzipped(PATHS.pruneDocker, '0755', o.scripts.pruneDocker),
    gzipped(PATHS.bootstrap, '0755', o.scripts.bootstrap),
    heredoc(PATHS.bootstrapUnit, '0644', renderBootstrapUnit()),
    // --no-block: cloud-init finishes while the unit works (and retries); systemd owns the boot from here.
    'systemctl daemon-reload',
    `systemctl enable ${PATHS.bootstrapUnitName}`,
    `systemctl start --no-block ${PATHS.bootstrapUnitName}`,
    '',
  ].join('\n');
  const bytes = Buffer.byteLength(script);
  if (bytes > USER_DATA_LIMIT) throw new Error(`user data is ${bytes} bytes, over EC2's ${USER_DATA_LIMIT}-byte limit`);
  return script;
}

/** Shell lines that write `content` to `path` from base64 (no quoting or `{{ }}` issues inside SSM documents). */
export function base64File(path: string, content: string): string[] {
  const b64 = Buffer.from(content).toString('base64');
  const lines = b64.match(/.{1,76}/g) ?? [];
  return [`base64 -d >${path} <<'${DELIMITER}'`, ...lines, DELIMITER];
}
