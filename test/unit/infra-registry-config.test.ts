import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import type { RegistryConfigOptions } from '../../infra/registry-config.ts';
import { fleetRegistryConfigOptions } from '../../infra/user-data.ts';

const SECRET = 's'.repeat(32);
const base: RegistryConfigOptions = { bucket: 'fleet-registry', region: 'eu-west-1', httpSecret: SECRET };
const render = (overrides: Partial<RegistryConfigOptions>): Record<string, unknown> =>
  parse(renderRegistryConfig({ ...base, ...overrides })) as Record<string, unknown>;

describe('renderRegistryConfig', () => {
  it('renders the minimal fleet config', () => {
    expect(render({})).toEqual({
      version: 0.1,
      log: { level: 'info', fields: { service: 'registry' } },
      storage: {
        s3: { region: 'eu-west-1', bucket: 'fleet-registry' },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: ':5000', secret: SECRET, headers: { 'X-Content-Type-Options': ['nosniff'] } },
    });
  });

  it('writes version 0.1 as distribution expects it', () => {
    expect(renderRegistryConfig(base)).toMatch(/^version: 0\.1$/m);
  });

  it.each<{ name: string; options: Partial<RegistryConfigOptions>; path: string[]; expected: unknown }>([
    {
      name: 'emulator endpoint: insecure, v4 auth, dummy keys',
      options: { regionEndpoint: 'http://127.0.0.1:4566' },
      path: ['storage', 's3'],
      expected: {
        region: 'eu-west-1',
        bucket: 'fleet-registry',
        regionendpoint: 'http://127.0.0.1:4566',
        secure: false,
        v4auth: true,
        accesskey: 'test',
        secretkey: 'test',
      },
    },
    {
      name: 'emulator endpoint with explicit keys',
      options: { regionEndpoint: 'https://s3.local:9000', accessKey: 'AK', secretKey: 'SK' },
      path: ['storage', 's3'],
      expected: {
        region: 'eu-west-1',
        bucket: 'fleet-registry',
        regionendpoint: 'https://s3.local:9000',
        secure: true,
        v4auth: true,
        accesskey: 'AK',
        secretkey: 'SK',
      },
    },
    {
      name: 'static keys without an endpoint',
      options: { accessKey: 'AK', secretKey: 'SK' },
      path: ['storage', 's3'],
      expected: { region: 'eu-west-1', bucket: 'fleet-registry', accesskey: 'AK', secretkey: 'SK' },
    },
    { name: 'rootdirectory', options: { rootDirectory: '/fleet/a' }, path: ['storage', 's3', 'rootdirectory'], expected: '/fleet/a' },
    {
      name: 'empty rootdirectory is left out',
      options: { rootDirectory: '' },
      path: ['storage', 's3', 'rootdirectory'],
      expected: undefined,
    },
    { name: 'http addr', options: { httpAddr: '127.0.0.1:5050' }, path: ['http', 'addr'], expected: '127.0.0.1:5050' },
    {
      name: 'htpasswd auth with the default realm',
      options: { htpasswdPath: '/etc/docker/registry/auth/htpasswd' },
      path: ['auth'],
      expected: { htpasswd: { realm: 'registry', path: '/etc/docker/registry/auth/htpasswd' } },
    },
    {
      name: 'htpasswd auth with a realm',
      options: { htpasswdPath: '/auth/htpasswd', htpasswdRealm: 'Fleet' },
      path: ['auth', 'htpasswd', 'realm'],
      expected: 'Fleet',
    },
    {
      name: 'debug listener with prometheus',
      options: { debugAddr: '127.0.0.1:5001' },
      path: ['http', 'debug'],
      expected: { addr: '127.0.0.1:5001', prometheus: { enabled: true, path: '/metrics' } },
    },
    { name: 'redirect disabled', options: { redirectDisable: true }, path: ['storage', 'redirect'], expected: { disable: true } },
    { name: 'redirect left on by default', options: { redirectDisable: false }, path: ['storage', 'redirect'], expected: undefined },
    { name: 'delete off by default', options: {}, path: ['storage', 'delete'], expected: undefined },
    { name: 'delete on when asked', options: { deleteEnabled: true }, path: ['storage', 'delete'], expected: { enabled: true } },
    { name: 'no health section by default', options: {}, path: ['health'], expected: undefined },
    {
      name: 'storage health check with defaults',
      options: { storageHealthCheck: true },
      path: ['health'],
      expected: { storagedriver: { enabled: true } },
    },
    {
      name: 'storage health check with interval and threshold',
      options: { storageHealthCheck: { interval: '10s', threshold: 3 } },
      path: ['health', 'storagedriver'],
      expected: { enabled: true, interval: '10s', threshold: 3 },
    },
    { name: 'log level', options: { logLevel: 'debug' }, path: ['log', 'level'], expected: 'debug' },
    {
      name: 'upload purging stays off whatever else is set',
      options: { redirectDisable: true, deleteEnabled: true, storageHealthCheck: true },
      path: ['storage', 'maintenance'],
      expected: { uploadpurging: { enabled: false } },
    },
  ])('$name', ({ options, path, expected }) => {
    const value = path.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], render(options));
    expect(value).toEqual(expected);
  });

  it('quotes values YAML would otherwise misread', () => {
    const config = render({ httpSecret: `${'x'.repeat(30)}: #y`, bucket: 'yes' });
    expect((config.http as { secret: string }).secret).toBe(`${'x'.repeat(30)}: #y`);
    expect((config.storage as { s3: { bucket: unknown } }).s3.bucket).toBe('yes');
  });

  it.each<{ field: string; options: Partial<RegistryConfigOptions> }>([
    { field: 'bucket', options: { bucket: '' } },
    { field: 'bucket', options: { bucket: '   ' } },
    { field: 'region', options: { region: '' } },
    { field: 'httpSecret', options: { httpSecret: 'x'.repeat(31) } },
    { field: 'httpAddr', options: { httpAddr: '5000' } },
    { field: 'httpAddr', options: { httpAddr: ':0' } },
    { field: 'httpAddr', options: { httpAddr: ':70000' } },
    { field: 'httpAddr', options: { httpAddr: 'http://host:5000' } },
    { field: 'debugAddr', options: { debugAddr: 'localhost' } },
    { field: 'regionEndpoint', options: { regionEndpoint: '127.0.0.1:4566' } },
    { field: 'secretKey', options: { accessKey: 'AK' } },
    { field: 'accessKey', options: { secretKey: 'SK' } },
    { field: 'htpasswdPath', options: { htpasswdPath: 'auth/htpasswd' } },
    { field: 'logLevel', options: { logLevel: 'trace' as never } },
    { field: 'storageHealthCheck.interval', options: { storageHealthCheck: { interval: '10 seconds' } } },
    { field: 'storageHealthCheck.threshold', options: { storageHealthCheck: { threshold: 0 } } },
  ])('rejects a bad $field ($options)', ({ field, options }) => {
    expect(() => renderRegistryConfig({ ...base, ...options })).toThrow(`invalid registry config option ${field}:`);
  });

  it('accepts the address forms Go listens on', () => {
    for (const httpAddr of [':5000', '0.0.0.0:5000', '127.0.0.1:65535', 'localhost:1', '[::1]:5000']) {
      expect(() => renderRegistryConfig({ ...base, httpAddr })).not.toThrow();
    }
  });
});

describe('renderRegistryConfig without http.secret', () => {
  it('leaves the secret out when the process gets it from REGISTRY_HTTP_SECRET (the fleet)', () => {
    const { httpSecret: _omitted, ...rest } = base;
    const config = parse(renderRegistryConfig(rest)) as { http: Record<string, unknown> };
    expect(config.http).not.toHaveProperty('secret');
    expect(config.http.addr).toBe(':5000');
  });
});

describe('the fleet registry config and collect-garbage (issue 22)', () => {
  const fleet = (o: { deleteEnabled?: boolean } = {}) =>
    parse(renderRegistryConfig(fleetRegistryConfigOptions({ bucket: 'fleet-registry', region: 'eu-west-1', ...o }))) as {
      storage: Record<string, unknown>;
    };

  it('never has a blob descriptor cache, whatever else is set (distribution #4569)', () => {
    for (const config of [
      fleet(),
      fleet({ deleteEnabled: true }),
      render({ redirectDisable: true, deleteEnabled: true, storageHealthCheck: true }),
    ]) {
      expect(config.storage as Record<string, unknown>).not.toHaveProperty('cache');
    }
  });

  it('storage.delete.enabled only when retention asks for it', () => {
    expect(fleet().storage).not.toHaveProperty('delete');
    expect(fleet({ deleteEnabled: false }).storage).not.toHaveProperty('delete');
    expect(fleet({ deleteEnabled: true }).storage.delete).toEqual({ enabled: true });
  });
});
