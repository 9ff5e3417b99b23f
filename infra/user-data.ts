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
  /** Drain before terminate (infra/assets/drain-registry.sh, its unit and its env file). */
  drain: '/usr/local/sbin/registry-drain.sh',
  drainUnit: '/etc/systemd/system/registry-drain.service',
  drainUnitName: 'registry-drain.service',
} as const;

export const REGISTRY_PORT = 5000;
export const REGISTRY_DEBUG_ADDR = '127.0.0.1:5001';
/** The group's termination lifecycle hook the drain watcher completes (a literal: the user data cannot name the group). */
export const DRAIN_HOOK_NAME = 'registry-drain';
/** Default drain timeout: the load balancer's idle timeout (ALB_IDLE_TIMEOUT_SECONDS). */
export const DEFAULT_DRAIN_TIMEOUT_SECONDS = 900;
/**
 * The hook waits this much longer than the watcher: the watcher's last complete call (it retries every poll) must
 * land before the heartbeat timeout continues the termination on its own.
 */
export const DRAIN_HEARTBEAT_MARGIN_SECONDS = 120;
export const DRAIN_POLL_SECONDS = 5;

export function drainHeartbeatSeconds(drainTimeoutSeconds: number): number {
  return drainTimeoutSeconds + DRAIN_HEARTBEAT_MARGIN_SECONDS;
}
/** EC2 user data limit (raw bytes, before base64). */
export const USER_DATA_LIMIT = 16_384;

/** The scripts shipped in infra/assets/ (read at synth time). */
export interface FleetScripts {
  bootstrap: string;
  installHtpasswd: string;
  pruneDocker: string;
  drain: string;
}

export const ASSET_FILES = {
  bootstrap: 'bootstrap-registry.sh',
  installHtpasswd: 'install-htpasswd.sh',
  pruneDocker: 'prune-docker.sh',
  drain: 'drain-registry.sh',
} as const satisfies Record<keyof FleetScripts, string>;

/** Reads one file of infra/assets/; a missing file fails synth with a message saying who provides it. */
export function readAsset(name: string, dir: string = ASSETS_DIR): string {
  const path = join(dir, name);
  if (!existsSync(path)) {
    throw new Error(
      `missing fleet asset ${path}: the CDK app embeds it into the user data and SSM documents; restore it (git checkout -- ` +
        `infra/assets/${name})`,
    );
  }
  return readFileSync(path, 'utf8');
}

export function readFleetScripts(dir: string = ASSETS_DIR): FleetScripts {
  return {
    bootstrap: readAsset(ASSET_FILES.bootstrap, dir),
    installHtpasswd: readAsset(ASSET_FILES.installHtpasswd, dir),
    pruneDocker: readAsset(ASSET_FILES.pruneDocker, dir),
    drain: readAsset(ASSET_FILES.drain, dir),
  };
}

/** The registry configuration every instance runs (instance role credentials; the secret comes from the env). */
export function fleetRegistryConfigOptions(o: { bucket: string; region: string; deleteEnabled?: boolean }): RegistryConfigOptions {
  return {
    bucket: o.bucket,
    region: o.region,
    ...(o.deleteEnabled ? { deleteEnabled: true } : {}),
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

/**
 * The drain watcher as a unit, running from boot: it only polls IMDS until termination starts. Its lines go to the
 * boot log, which the CloudWatch agent already ships (stream `<instance>/bootstrap`). A crash is restarted; an
 * exit 0 means the hook was completed or its heartbeat has run out.
 */
export function renderDrainUnit(env: Record<string, string>): string {
  // Kept short (user data is capped at 16 KiB): Type=simple is the default, and no network ordering is needed
  // because the script retries every call itself.
  const environment = Object.entries(env).map(([key, value]) => {
    if (!/^[^\s'"\\]*$/.test(value)) throw new Error(`user data: ${key} must not contain spaces, quotes or backslashes`);
    return `Environment=${key}=${value}`;
  });
  return [
    '[Unit]',
    'Description=registry drain before terminate',
    'StartLimitIntervalSec=0',
    '[Service]',
    ...environment,
    `ExecStart=${PATHS.drain}`,
    // StandardError inherits this: both go to the boot log.
    `StandardOutput=append:${PATHS.bootstrapLog}`,
    'Restart=on-failure',
    'RestartSec=5s',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/**
 * The watcher's settings (the unit's Environment= lines). Where the registry listens (REGISTRY_URL, and
 * REGISTRY_METRICS_URL on REGISTRY_DEBUG_ADDR) are the script's own defaults, which test/infra/drain.test.ts holds
 * to these constants; tests point them elsewhere.
 */
export function drainEnv(o: { drainTimeoutSeconds: number; pollSeconds?: number }): Record<string, string> {
  const timeout = o.drainTimeoutSeconds;
  if (!Number.isInteger(timeout) || timeout < 1)
    throw new Error(`user data: drainTimeoutSeconds must be a whole number ≥ 1, got ${timeout}`);
  return {
    DRAIN_HOOK_NAME,
    DRAIN_TIMEOUT_SECONDS: String(timeout),
    DRAIN_HEARTBEAT_SECONDS: String(drainHeartbeatSeconds(timeout)),
    DRAIN_POLL_SECONDS: String(o.pollSeconds ?? DRAIN_POLL_SECONDS),
  };
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
  /** How long a terminating instance waits for requests in flight (default DEFAULT_DRAIN_TIMEOUT_SECONDS). */
  drainTimeoutSeconds?: number;
  /** `storage.delete.enabled` in the registry config: only with collect-garbage's retention on (gcRetention). */
  registryDeleteEnabled?: boolean;
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
 * A script without its whole-line comments (the shebang and shellcheck directives stay): the scripts' reasons live
 * in the repository and the README, and every byte counts against EC2's 16 KiB user data limit. No script here has
 * a heredoc whose body holds a line starting with `#` (test/unit/infra-user-data.test.ts checks it).
 */
export function withoutComments(script: string): string {
  return script
    .split('\n')
    .filter((line, i) => i === 0 || !/^\s*#/.test(line) || /^\s*# shellcheck /.test(line))
    .join('\n');
}

/**
 * Writes a static script gzipped and base64-encoded: the three scripts are most of the user data, and EC2 caps
 * it at 16 KiB. Only files without CloudFormation tokens can go this way (a token inside would be encoded away).
 */
function gzipped(path: string, mode: string, content: string): string {
  const lines =
    gzipSync(Buffer.from(content), { level: 9 })
      .toString('base64')
      .match(/.{1,76}/g) ?? [];
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
  if (!Number.isInteger(reportAfter) || reportAfter < 60)
    throw new Error('user data: bootReportAfterSeconds must be a whole ' + 'number ≥ 60');
  const config = renderRegistryConfig(
    fleetRegistryConfigOptions({ bucket: o.bucket, region: o.region, deleteEnabled: o.registryDeleteEnabled ?? false }),
  );
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
    // Root-only from its creation: it holds the wait-condition URL, which can signal (and fail) the stack.
    `install -m 0600 /dev/null ${PATHS.fleetEnv}`,
    heredoc(PATHS.fleetEnv, '0600', fleetEnv),
    heredoc(PATHS.config, '0644', config),
    heredoc(PATHS.cloudWatchAgentConfig, '0644', renderCloudWatchAgentConfig({ logGroup: o.logGroup })),
    gzipped(PATHS.installHtpasswd, '0755', withoutComments(o.scripts.installHtpasswd)),
    gzipped(PATHS.pruneDocker, '0755', withoutComments(o.scripts.pruneDocker)),
    gzipped(PATHS.bootstrap, '0755', withoutComments(o.scripts.bootstrap)),
    heredoc(PATHS.bootstrapUnit, '0644', renderBootstrapUnit()),
    gzipped(PATHS.drain, '0755', withoutComments(o.scripts.drain)),
    gzipped(
      PATHS.drainUnit,
      '0644',
      renderDrainUnit(drainEnv({ drainTimeoutSeconds: o.drainTimeoutSeconds ?? DEFAULT_DRAIN_TIMEOUT_SECONDS })),
    ),
    // --no-block: cloud-init finishes while the unit works (and retries); systemd owns the boot from here.
    'systemctl daemon-reload',
    // The drain watcher first (see renderDrainUnit): an instance terminated mid-boot is released at once.
    `systemctl enable ${PATHS.drainUnitName}`,
    `systemctl start --no-block ${PATHS.drainUnitName}`,
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
