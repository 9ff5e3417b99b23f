import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  ASSET_FILES,
  PATHS,
  readAsset,
  readFleetScripts,
  renderBootstrapUnit,
  renderCloudWatchAgentConfig,
  renderUserData,
  withoutComments,
} from '../../infra/user-data.ts';
import type { UserDataOptions } from '../../infra/user-data.ts';

const options: UserDataOptions = {
  region: 'eu-west-1',
  bucket: 'fleet-registry-bucket',
  registryImage: 'registry:2.8.3',
  httpSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:http-AbCdEf',
  htpasswdSource: 's3://fleet-registry-bucket/control-plane/htpasswd',
  logGroup: 'fleet-registry-logs',
  waitHandleUrl: 'https://cloudformation-waitcondition-eu-west-1.s3.amazonaws.com/arn%3Aaws%3Acloudformation/handle?X-Amz-Signature=abc',
  scripts: readFleetScripts(),
};
const userData = renderUserData(options);

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

const tmp = mkdtempSync(join(tmpdir(), 'user-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function shellcheck(name: string, content: string): { status: number | null; output: string } {
  const file = join(tmp, name);
  writeFileSync(file, content);
  const r = spawnSync('shellcheck', ['--shell=bash', '--severity=style', file], { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('renderUserData', () => {
  it('is a bash script that stops at the first failure', () => {
    expect(userData.startsWith('#!/bin/bash\n')).toBe(true);
    expect(userData).toContain('set -euo pipefail');
  });

  it.each([
    ['the whole user data', userData],
    ['the bootstrap as installed', fileIn(userData, PATHS.bootstrap)],
    ['install-htpasswd.sh as installed', fileIn(userData, PATHS.installHtpasswd)],
    ['prune-docker.sh as installed', fileIn(userData, PATHS.pruneDocker)],
  ])('%s passes shellcheck', (name, content) => {
    const r = shellcheck(`${name.replace(/\W+/g, '-')}.sh`, content);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('no embedded script has a heredoc body line starting with # (withoutComments would change it)', () => {
    for (const file of Object.values(ASSET_FILES)) {
      const lines = readAsset(file).split('\n');
      let end: string | undefined;
      for (const line of lines) {
        if (end !== undefined) {
          if (line.trim() === end) end = undefined;
          else expect(/^\s*#/.test(line), `${file}: ${line}`).toBe(false);
        } else end = /<<-?\s*'?(\w+)'?\s*$/.exec(line)?.[1];
      }
    }
  });

  it('installs the scripts unchanged but for their whole-line comments (16 KiB user data limit)', () => {
    expect(fileIn(userData, PATHS.bootstrap)).toBe(withoutComments(readAsset(ASSET_FILES.bootstrap)));
    expect(fileIn(userData, PATHS.installHtpasswd)).toBe(withoutComments(readAsset(ASSET_FILES.installHtpasswd)));
    expect(fileIn(userData, PATHS.pruneDocker)).toBe(withoutComments(readAsset(ASSET_FILES.pruneDocker)));
  });

  it('writes the fleet registry config: instance role, purging off, htpasswd dir, health check, loopback debug, no secret', () => {
    const config = parse(fileIn(userData, PATHS.config)) as { storage: { s3: object }; http: object };
    expect(config).toMatchObject({
      storage: { s3: { bucket: 'fleet-registry-bucket', region: 'eu-west-1' }, maintenance: { uploadpurging: { enabled: false } } },
      http: { addr: ':5000', debug: { addr: '127.0.0.1:5001' } },
      auth: { htpasswd: { path: '/auth/htpasswd' } },
      health: { storagedriver: { enabled: true } },
    });
    expect(config.storage.s3).not.toHaveProperty('accesskey');
    expect(config.http).not.toHaveProperty('secret');
  });

  it('passes the values to the bootstrap through the env file, single-quoted', () => {
    expect(fileIn(userData, PATHS.fleetEnv).trim().split('\n')).toEqual([
      "AWS_REGION='eu-west-1'",
      "REGISTRY_IMAGE='registry:2.8.3'",
      `HTTP_SECRET_ARN='${options.httpSecretArn}'`,
      `HTPASSWD_SOURCE='${options.htpasswdSource}'`,
      "HTPASSWD_POLL_SECONDS='10'",
      "LOG_GROUP='fleet-registry-logs'",
      "BOOT_REPORT_AFTER_SECONDS='900'",
      `WAIT_HANDLE_URL='${options.waitHandleUrl ?? ''}'`,
    ]);
  });

  it('bootstrap: htpasswd and http.secret before the registry starts; pinned image with the contract mounts', () => {
    const boot = fileIn(userData, PATHS.bootstrap);
    const at = (s: string) => {
      const i = boot.indexOf(s);
      expect(i, s).toBeGreaterThan(-1);
      return i;
    };
    const run = at('docker run -d --name registry');
    expect(at('/usr/local/bin/install-htpasswd.sh "$HTPASSWD_SOURCE" - "$AUTH_DIR"')).toBeLessThan(run);
    expect(at('aws secretsmanager get-secret-value')).toBeLessThan(run);
    expect(at('return 1')).toBeLessThan(run);
    expect(boot).not.toMatch(/^\s*exit 1/m); // a failure returns to systemd (Restart=on-failure), never ends the boot for good
    for (const flag of [
      '--restart=always',
      '--network host',
      '--log-driver awslogs',
      'awslogs-group=${LOG_GROUP}',
      '-v "${AUTH_DIR}:/auth:ro"',
      '--env-file',
    ]) {
      expect(boot.slice(run)).toContain(flag);
    }
  });

  it('writes the env file (it holds the wait-condition URL that can signal the stack) 0600, never readable by others', () => {
    // Run the user data's own lines for the env file, under a scratch root instead of /.
    const root = mkdtempSync(join(tmp, 'root-'));
    const start = userData.indexOf(`cat >${PATHS.fleetEnv} `);
    const end = userData.indexOf(`chmod 0600 ${PATHS.fleetEnv}\n`);
    expect(start).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(start);
    const before = userData
      .slice(0, start)
      .split('\n')
      .filter((l) => l.includes(PATHS.fleetEnv))
      .join('\n');
    const lines = `${before}\n${userData.slice(start, end)}`.replaceAll('/etc/', `${root}/etc/`);
    const r = spawnSync('bash', ['-euo', 'pipefail', '-c', `umask 022\nmkdir -p ${root}/etc/registry-fleet\n${lines}`], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    // Before the final chmod: the file never exists with a wider mode, not even for a moment.
    expect(statSync(join(root, PATHS.fleetEnv)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(root, PATHS.fleetEnv), 'utf8')).toContain("WAIT_HANDLE_URL='https://cloudformation-waitcondition");
  });

  it('keeps user data under the EC2 limit', () => {
    expect(Buffer.byteLength(userData)).toBeLessThan(16_384);
    expect(() =>
      renderUserData({
        ...options,
        scripts: { ...options.scripts, bootstrap: `#!/bin/bash\necho ${randomBytes(12_000).toString('hex')}` },
      }),
    ).toThrow(/over EC2's 16384-byte limit/);
  });

  it('refuses values it cannot quote and content holding its delimiter', () => {
    expect(() => renderUserData({ ...options, registryImage: "registry:2.8.3'; rm -rf /" })).toThrow(
      /REGISTRY_IMAGE must not contain a quote/,
    );
    // The scripts travel base64-encoded, so their content can never end a heredoc early.
    const tricky = renderUserData({ ...options, scripts: { ...options.scripts, pruneDocker: 'x\nREGISTRY_FLEET_EOF\ny\n' } });
    expect(fileIn(tricky, PATHS.pruneDocker)).toBe('x\nREGISTRY_FLEET_EOF\ny\n');
  });

  it('fails with a clear message when an asset is missing', () => {
    expect(() => readAsset('install-htpasswd.sh', tmp)).toThrow(/missing fleet asset .*install-htpasswd\.sh/);
  });
});

describe('renderBootstrapUnit', () => {
  it('a oneshot unit that systemd runs again on failure, without a start limit, and at every boot', () => {
    const unit = renderBootstrapUnit();
    for (const line of [
      'Type=oneshot',
      'Restart=on-failure',
      'RestartSec=10s',
      'StartLimitIntervalSec=0',
      'TimeoutStartSec=infinity',
      'WantedBy=multi-user.target',
    ]) {
      expect(unit.split('\n')).toContain(line);
    }
    expect(unit).toContain(`ExecStart=/bin/bash -c 'set -o pipefail; ${PATHS.bootstrap} 2>&1 | tee -a ${PATHS.bootstrapLog}'`);
    expect(fileIn(userData, PATHS.bootstrapUnit)).toBe(unit);
    expect(userData).toMatch(/systemctl enable registry-bootstrap\.service\nsystemctl start --no-block registry-bootstrap\.service\n$/);
  });
});

describe('renderCloudWatchAgentConfig', () => {
  it('ships the boot logs to the log group when given one', () => {
    const config = JSON.parse(renderCloudWatchAgentConfig({ logGroup: 'g' })) as {
      logs: { logs_collected: { files: { collect_list: unknown[] } } };
    };
    expect(config.logs.logs_collected.files.collect_list).toEqual([
      { file_path: '/var/log/registry-bootstrap.log', log_group_name: 'g', log_stream_name: '{instance_id}/bootstrap' },
      { file_path: '/var/log/cloud-init-output.log', log_group_name: 'g', log_stream_name: '{instance_id}/cloud-init' },
    ]);
  });

  it('publishes disk_used_percent of / per instance in CWAgent (PREAMBLE contract), with the fleet as a dimension', () => {
    expect(JSON.parse(renderCloudWatchAgentConfig())).toEqual({
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
    });
  });
});
