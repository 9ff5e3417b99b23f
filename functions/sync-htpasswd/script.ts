import { shortSha } from '../../shared/htpasswd.ts';
import type { CommandRequest } from '../../shared/ssm-commands.ts';
import type { SyncHtpasswdConfig } from './config.ts';

/**
 * The contract with infra/assets/install-htpasswd.sh as the SSM document runs it: the two requests this job
 * sends (install a given sha256, or report the served one) and the lines the script prints. Sending and polling
 * are shared/ssm-commands.ts's; what a result means for an instance is apply's and observe's.
 */

type ScriptConfig = Pick<SyncHtpasswdConfig, 'documentName' | 'bucket' | 'objectKey' | 'maxConcurrency'>;

/** How long SSM tries to deliver one command to an instance. */
const DELIVERY_TIMEOUT_S = 60;

export const sourceOf = (config: Pick<SyncHtpasswdConfig, 'bucket' | 'objectKey'>): string => `s3://${config.bucket}/${config.objectKey}`;

export function installRequest(config: ScriptConfig, sha256: string): CommandRequest {
  return {
    documentName: config.documentName,
    parameters: { Source: [sourceOf(config)], Sha256: [sha256], Mode: ['install'] },
    maxConcurrency: String(config.maxConcurrency),
    // Send to all: the file was validated here and is validated again on each instance, so a failure is local to
    // that instance; stopping after it would leave a revoked user working on every instance not yet reached.
    maxErrors: '100%',
    timeoutSeconds: DELIVERY_TIMEOUT_S,
    comment: `sync-htpasswd install sha256=${shortSha(sha256)}`,
  };
}

export function reportRequest(config: ScriptConfig, instances: number): CommandRequest {
  return {
    documentName: config.documentName,
    parameters: { Source: [sourceOf(config)], Sha256: ['-'], Mode: ['report'] },
    maxConcurrency: String(Math.min(50, Math.max(config.maxConcurrency, instances))),
    maxErrors: '100%', // a read: never stop early
    timeoutSeconds: DELIVERY_TIMEOUT_S,
    comment: 'sync-htpasswd drift check',
  };
}

/** `installed sha256=<hex>`, `previous sha256=<hex|none>`, `current sha256=<hex|none>` from the script's output. */
export function parseScriptOutput(output: string): { installed?: string; previous?: string | null; current?: string | null } {
  const find = (label: string): string | null | undefined => {
    const matches = [...output.matchAll(new RegExp(`^${label} sha256=([0-9a-f]{64}|none)\\s*$`, 'gm'))];
    const value = matches.at(-1)?.[1];
    return value === undefined ? undefined : value === 'none' ? null : value;
  };
  const installed = find('installed');
  const previous = find('previous');
  const current = find('current');
  return {
    ...(installed ? { installed } : {}),
    ...(previous !== undefined ? { previous } : {}),
    ...(current !== undefined ? { current } : {}),
  };
}
