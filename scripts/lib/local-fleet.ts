/**
 * A registry fleet on loopback, for the demo: moto_server as the embedded AWS, and two real
 * `docker-registry` processes that share moto's S3 bucket, one `http.secret` and one htpasswd auth
 * directory, configured by the same renderer the fleet's user data uses.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import bcrypt from 'bcryptjs';
import { renderRegistryConfig } from '../../infra/registry-config.ts';
import { startMoto, type Moto } from '../../local/moto.ts';
import { freePort } from '../../local/ports.ts';
import { startRegistry, type Registry } from '../../local/registry.ts';

export interface LocalFleet {
  moto: Moto;
  bucket: string;
  authDir: string;
  registries: Registry[];
  admin: { username: string; password: string };
  s3: S3Client;
  stop(): Promise<void>;
}

export async function startLocalFleet({ bucket = 'registry-demo', instances = 2 } = {}): Promise<LocalFleet> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const fn of stops.reverse()) await fn().catch(() => undefined);
  };
  try {
    const moto = await startMoto();
    stops.push(() => moto.stop());
    const s3 = new S3Client({
      endpoint: moto.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));

    const work = await mkdtemp(join(tmpdir(), 'registry-fleet-'));
    stops.push(() => rm(work, { recursive: true, force: true }));
    const authDir = join(work, 'auth');
    await mkdir(authDir, { recursive: true });
    // The fleet never starts a registry without an htpasswd file (it would invent a `docker` user).
    const admin = { username: 'admin', password: randomBytes(12).toString('base64url') };
    await writeFile(join(authDir, 'htpasswd'), `${admin.username}:${bcrypt.hashSync(admin.password, 5)}\n`);

    const httpSecret = randomBytes(32).toString('base64url');
    const registries: Registry[] = [];
    for (let i = 0; i < instances; i++) {
      const port = await freePort();
      const config = renderRegistryConfig({
        bucket,
        region: 'us-east-1',
        regionEndpoint: moto.endpoint,
        httpAddr: `127.0.0.1:${port}`,
        httpSecret,
        htpasswdPath: join(authDir, 'htpasswd'),
        redirectDisable: true,
        logLevel: 'warn',
      });
      const dir = join(work, `instance-${i + 1}`);
      await mkdir(dir, { recursive: true });
      const registry = await startRegistry({ config, dir });
      stops.push(() => registry.stop());
      registries.push(registry);
    }
    return { moto, bucket, authDir, registries, admin, s3, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
