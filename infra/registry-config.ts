import { stringify } from 'yaml';

/** Typed options for distribution 2.8's `config.yml` (the `registry:2` image) on S3. */
export interface RegistryConfigOptions {
  bucket: string;
  region: string;
  /** `storage.s3.rootdirectory`: keys then start `<root>/docker/registry/v2/`. */
  rootDirectory?: string;
  /** An S3 emulator such as moto (`http://127.0.0.1:PORT`): path-style, v4 auth, dummy keys unless given. */
  regionEndpoint?: string;
  /** Static credentials; omit both on EC2 to use the instance role. */
  accessKey?: string;
  secretKey?: string;
  /** `http.addr`, `[host]:port` (default `:5000`). */
  httpAddr?: string;
  /**
   * `http.secret`: HMAC key for upload state; the whole fleet must share it (≥ 32 chars). Omit it only when
   * the process gets it another way: the fleet's instances pass `REGISTRY_HTTP_SECRET` to the container,
   * read from Secrets Manager at boot, so the secret is never part of a template.
   */
  httpSecret?: string;
  /** Absolute path of a bcrypt htpasswd file: turns on `auth.htpasswd`. */
  htpasswdPath?: string;
  /** `auth.htpasswd.realm` (default `registry`). */
  htpasswdRealm?: string;
  /** `http.debug.addr` (e.g. `127.0.0.1:5001`), served with Prometheus metrics on `/metrics`. */
  debugAddr?: string;
  /** `storage.redirect.disable`: serve blobs through the registry instead of 307 to presigned S3 URLs. */
  redirectDisable?: boolean;
  /** `storage.delete.enabled` (default off). */
  deleteEnabled?: boolean;
  /** `health.storagedriver`: `true` for distribution's defaults, or explicit interval/threshold. */
  storageHealthCheck?: boolean | { interval?: string; threshold?: number };
  logLevel?: LogLevel;
  /** `log.formatter`: `json` makes every request a JSON object (fields such as `auth.user.name`) for Logs Insights. */
  logFormatter?: 'text' | 'json' | 'logstash';
}

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
const ADDR = /^(|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;
const MIN_SECRET_LENGTH = 32;

function fail(field: string, problem: string): never {
  throw new Error(`invalid registry config option ${field}: ${problem}`);
}

function checkAddr(field: string, addr: string): void {
  const port = Number(ADDR.exec(addr)?.[2]);
  if (!(port >= 1 && port <= 65_535)) fail(field, `"${addr}" is not [host]:port with a port in 1–65535`);
}

function validate(o: RegistryConfigOptions): void {
  if (!o.bucket?.trim()) fail('bucket', 'must not be empty');
  if (!o.region?.trim()) fail('region', 'must not be empty');
  if (o.httpSecret !== undefined && (typeof o.httpSecret !== 'string' || o.httpSecret.length < MIN_SECRET_LENGTH)) {
    fail('httpSecret', `must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  checkAddr('httpAddr', o.httpAddr ?? ':5000');
  if (o.debugAddr !== undefined) checkAddr('debugAddr', o.debugAddr);
  if (o.regionEndpoint !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(o.regionEndpoint)) {
    fail('regionEndpoint', `"${o.regionEndpoint}" is not an http(s)://host[:port] URL`);
  }
  if ((o.accessKey === undefined) !== (o.secretKey === undefined)) {
    fail(o.accessKey === undefined ? 'accessKey' : 'secretKey', 'accessKey and secretKey go together');
  }
  if (o.htpasswdPath !== undefined && !o.htpasswdPath.startsWith('/')) {
    fail('htpasswdPath', `"${o.htpasswdPath}" must be an absolute path`);
  }
  if (o.logFormatter !== undefined && !['text', 'json', 'logstash'].includes(o.logFormatter)) {
    fail('logFormatter', `"${String(o.logFormatter)}" is not one of text, json, logstash`);
  }
  if (o.logLevel !== undefined && !LOG_LEVELS.includes(o.logLevel)) {
    fail('logLevel', `"${String(o.logLevel)}" is not one of ${LOG_LEVELS.join(', ')}`);
  }
  const health = typeof o.storageHealthCheck === 'object' ? o.storageHealthCheck : {};
  if (health.interval !== undefined && !GO_DURATION.test(health.interval)) {
    fail('storageHealthCheck.interval', `"${health.interval}" is not a Go duration such as 10s`);
  }
  if (health.threshold !== undefined && !(Number.isInteger(health.threshold) && health.threshold >= 1)) {
    fail('storageHealthCheck.threshold', 'must be a positive integer');
  }
}

function s3Section(o: RegistryConfigOptions): Record<string, unknown> {
  const s3: Record<string, unknown> = { region: o.region, bucket: o.bucket };
  if (o.rootDirectory) s3.rootdirectory = o.rootDirectory;
  if (o.regionEndpoint !== undefined) {
    // An emulator: distribution implies path-style addressing from regionendpoint.
    s3.regionendpoint = o.regionEndpoint;
    s3.secure = o.regionEndpoint.startsWith('https://');
    s3.v4auth = true;
    s3.accesskey = o.accessKey ?? 'test';
    s3.secretkey = o.secretKey ?? 'test';
  } else if (o.accessKey !== undefined) {
    s3.accesskey = o.accessKey;
    s3.secretkey = o.secretKey;
  }
  return s3;
}

function storageSection(o: RegistryConfigOptions): Record<string, unknown> {
  return {
    s3: s3Section(o),
    // Stale uploads are purged centrally by the purge-stale-uploads Lambda, never on the instances.
    maintenance: { uploadpurging: { enabled: false } },
    ...(o.redirectDisable ? { redirect: { disable: true } } : {}),
    ...(o.deleteEnabled ? { delete: { enabled: true } } : {}),
    // No `cache` section, ever: with `blobdescriptor: inmemory` a registry keeps answering that a blob
    // collect-garbage deleted exists, and a re-push skips the upload (distribution #4569). Without one it stats S3.
  };
}

function httpSection(o: RegistryConfigOptions): Record<string, unknown> {
  return {
    addr: o.httpAddr ?? ':5000',
    ...(o.httpSecret !== undefined ? { secret: o.httpSecret } : {}),
    headers: { 'X-Content-Type-Options': ['nosniff'] },
    ...(o.debugAddr !== undefined ? { debug: { addr: o.debugAddr, prometheus: { enabled: true, path: '/metrics' } } } : {}),
  };
}

function healthSection(check: RegistryConfigOptions['storageHealthCheck']): Record<string, unknown> | undefined {
  if (!check) return undefined;
  const { interval, threshold } = typeof check === 'object' ? check : {};
  return { storagedriver: { enabled: true, ...(interval ? { interval } : {}), ...(threshold ? { threshold } : {}) } };
}

/** Renders distribution 2.8's `config.yml`. Pure; throws an error naming the field on bad input. */
export function renderRegistryConfig(opts: RegistryConfigOptions): string {
  validate(opts);
  const health = healthSection(opts.storageHealthCheck);
  const config = {
    version: 0.1,
    log: {
      level: opts.logLevel ?? 'info',
      ...(opts.logFormatter ? { formatter: opts.logFormatter } : {}),
      fields: { service: 'registry' },
    },
    storage: storageSection(opts),
    http: httpSection(opts),
    ...(opts.htpasswdPath !== undefined
      ? { auth: { htpasswd: { realm: opts.htpasswdRealm ?? 'registry', path: opts.htpasswdPath } } }
      : {}),
    ...(health ? { health } : {}),
  };
  return stringify(config);
}
