import { CfnDocument } from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { base64File, PATHS } from '../user-data.ts';

export interface FleetDocumentsProps {
  /** Documents are named `<namePrefix>-sync-htpasswd` and `<namePrefix>-prune-docker` (the stack name). */
  namePrefix: string;
  /** Content of infra/assets/install-htpasswd.sh (embedded, so a new version needs no instance replacement). */
  installHtpasswdScript: string;
  /** Content of infra/assets/prune-docker.sh. */
  pruneDockerScript: string;
}

/** Runs an embedded script from a temp file; `args` are already quoted shell words. */
function runEmbedded(script: string, args: string): string[] {
  return [
    'set -euo pipefail',
    'script=$(mktemp)',
    'trap \'rm -f "$script"\' EXIT',
    ...base64File('"$script"', script),
    `bash "$script" ${args}`,
  ];
}

/**
 * The SSM Command documents the jobs run on fleet instances (PREAMBLE "On-instance contract"):
 * htpasswd sync (Source, Sha256, Mode) and docker prune (MaxLogMb). Parameters are pattern-checked by SSM
 * and single-quoted in the script, so a parameter can never become shell code.
 */
export class FleetDocuments extends Construct {
  /** Document name (`SYNC_DOCUMENT_NAME`). */
  readonly syncHtpasswdName: string;
  /** Document name (`PRUNE_DOCUMENT_NAME`). */
  readonly pruneDockerName: string;

  constructor(scope: Construct, id: string, props: FleetDocumentsProps) {
    super(scope, id);
    if (!/^[A-Za-z0-9_.-]{1,100}$/.test(props.namePrefix) || /^(aws|amazon|amzn)/i.test(props.namePrefix)) {
      throw new Error(
        `FleetDocuments: namePrefix "${props.namePrefix}" must be letters, digits, _ . - and not start with aws, amazon or amzn`,
      );
    }
    for (const [name, script] of Object.entries({
      installHtpasswdScript: props.installHtpasswdScript,
      pruneDockerScript: props.pruneDockerScript,
    })) {
      if (!script.trim()) throw new Error(`FleetDocuments: ${name} is empty`);
    }

    const sync = new CfnDocument(this, 'SyncHtpasswd', {
      name: `${props.namePrefix}-sync-htpasswd`,
      documentType: 'Command',
      updateMethod: 'NewVersion',
      content: {
        schemaVersion: '2.2',
        description: 'Installs the registry htpasswd file (atomic rename in the auth directory), or reports its sha256.',
        parameters: {
          Source: {
            type: 'String',
            description: 's3://bucket/key (or an http(s) URL) of the rendered htpasswd file',
            allowedPattern: "^(s3|https?)://[^'\\s]+$",
          },
          Sha256: {
            type: 'String',
            default: '-',
            description: 'expected sha256 (hex), or - to skip',
            allowedPattern: '^([0-9a-f]{64}|-)$',
          },
          Mode: { type: 'String', default: 'install', allowedValues: ['install', 'report'] },
        },
        mainSteps: [
          {
            action: 'aws:runShellScript',
            name: 'installHtpasswd',
            precondition: { StringEquals: ['platformType', 'Linux'] },
            inputs: {
              timeoutSeconds: '120',
              runCommand: [
                "mode='{{ Mode }}'",
                `if [ "$mode" = report ]; then args=(--report - ${PATHS.authDir}); else args=('{{ Source }}' '{{ Sha256 }}' ` +
                  `${PATHS.authDir}); fi`,
                ...runEmbedded(props.installHtpasswdScript, '"${args[@]}"'),
              ],
            },
          },
        ],
      },
    });

    const prune = new CfnDocument(this, 'PruneDocker', {
      name: `${props.namePrefix}-prune-docker`,
      documentType: 'Command',
      updateMethod: 'NewVersion',
      content: {
        schemaVersion: '2.2',
        description: 'Frees disk on a registry instance: unused images, anonymous volumes, build cache, oversized container logs.',
        parameters: {
          MaxLogMb: {
            type: 'String',
            default: '100',
            description: 'truncate container logs over this many MiB',
            allowedPattern: '^[0-9]{1,6}$',
          },
        },
        mainSteps: [
          {
            action: 'aws:runShellScript',
            name: 'pruneDocker',
            precondition: { StringEquals: ['platformType', 'Linux'] },
            inputs: { timeoutSeconds: '600', runCommand: runEmbedded(props.pruneDockerScript, "--max-log-mb '{{ MaxLogMb }}'") },
          },
        ],
      },
    });

    this.syncHtpasswdName = sync.ref;
    this.pruneDockerName = prune.ref;
  }
}
