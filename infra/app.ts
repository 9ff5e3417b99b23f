import { pathToFileURL } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FleetConfigError, parseFleetConfig } from './config.ts';
import type { FleetConfig } from './config.ts';
import { RegistryFleetStack } from './stack.ts';

/**
 * The CDK app: the only place that reads context (STYLE §9). `cdk synth`/`cdk deploy -c key=value ...` run
 * this file (cdk.json); tests call createApp() with a context of their own.
 */
export interface CreatedApp {
  app: App;
  config: FleetConfig;
  stack: RegistryFleetStack;
}

export function createApp(options: { context?: Record<string, unknown>; outdir?: string; nag?: boolean } = {}): CreatedApp {
  const app = new App({ ...(options.context ? { context: options.context } : {}), ...(options.outdir ? { outdir: options.outdir } : {}) });
  // All of the context, so a key this app does not know (a typo) fails synth instead of being ignored.
  const config = parseFleetConfig(app.node.getAllContext() as Record<string, unknown>);
  // Env-agnostic unless account/region are given: synth needs no credentials and makes no lookups.
  const env =
    config.account || config.region
      ? { ...(config.account ? { account: config.account } : {}), ...(config.region ? { region: config.region } : {}) }
      : undefined;
  const stack = new RegistryFleetStack(app, config.stackName, {
    config,
    description: `Private Docker registry fleet ${config.domainName} and its control plane`,
    ...(env ? { env } : {}),
  });
  // cdk-nag AwsSolutions: an unsuppressed finding is an error annotation, which fails `cdk synth`.
  if (options.nag ?? app.node.tryGetContext('nag') !== 'false')
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, config, stack };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  try {
    createApp().app.synth();
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    console.error(error instanceof FleetConfigError ? error.message : `cannot synthesise the registry fleet: ${error.message}`);
    process.exit(1);
  }
}
