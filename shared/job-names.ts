/** The six jobs (ARCHITECTURE §1): folder name = Lambda name suffix = the report's `job`. No side effects. */
export const JOB_NAMES = [
  'replace-unhealthy-instances',
  'purge-stale-uploads',
  'purge-disk-volumes',
  'rotate-certificates',
  'sync-htpasswd',
  'collect-garbage',
] as const;
export type JobName = (typeof JOB_NAMES)[number];
