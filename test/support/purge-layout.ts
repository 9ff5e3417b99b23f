import { CreateMultipartUploadCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { mapLimit } from '../../shared/concurrency.ts';
import { repositoriesPrefix, uploadDirPrefix } from '../../shared/registry-layout.ts';
import type { SeededMoto } from './seeded-moto.ts';

/**
 * A generated registry in the shape distribution 2.8 writes (REGISTRY-FACTS.md): per repository, layer and
 * manifest links; stale and fresh uploads (`startedat` holding an RFC 3339 time, a hash state, an open multipart
 * upload on `data`); cancelled-upload leftovers (a lone `hashstates/sha256/0`); orphan multipart uploads. The
 * bulk (links, hash states) goes through moto's seeding channel; `startedat` (each its own time) and the
 * multipart uploads go over HTTP. Ages come from `startedat`'s content relative to `clock`, so the job runs with
 * a STARTEDAT_READ_WINDOW that reads every one.
 */
export interface LayoutSpec {
  readonly namespaces: number;
  readonly reposPerNamespace: number;
  readonly linksPerRepo: number;
  readonly stale: number;
  readonly fresh: number;
  readonly cancelled: number;
  readonly orphans: number;
}

export interface Layout {
  readonly repos: readonly string[];
  /** `<repo>/_uploads/<uuid>` of every upload the purge must remove (stale, cancelled) … */
  readonly staleTargets: readonly string[];
  /** … and of those it must keep. */
  readonly freshTargets: readonly string[];
  readonly orphanTargets: readonly string[];
  /** Keys under repositories/ (links + upload objects). */
  readonly keys: number;
}

export const uuid = (n: number, salt = 0): string =>
  `${salt.toString(16).padStart(8, '0')}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const hex = (n: number): string => n.toString(16).padStart(64, '0');
const H = 3_600_000;

export async function seedLayout(
  moto: SeededMoto,
  s3: S3Client,
  bucket: string,
  root: string,
  spec: LayoutSpec,
  clock: Date,
): Promise<Layout> {
  const repos: string[] = [];
  for (let n = 0; n < spec.namespaces; n += 1) for (let r = 0; r < spec.reposPerNamespace; r += 1) repos.push(`ns-${n}/repo-${r}`);
  const prefix = repositoriesPrefix(root);
  const links: string[] = [];
  repos.forEach((repo, r) => {
    for (let l = 0; l < spec.linksPerRepo; l += 1) {
      const kind = l % 2 === 0 ? '_layers/sha256' : '_manifests/revisions/sha256';
      links.push(`${prefix}${repo}/${kind}/${hex(r * 1_000_003 + l)}/link`);
    }
  });
  await moto.seed(bucket, links, `sha256:${hex(1)}`);

  const pick = (i: number): string => repos[(i * 7919) % repos.length] as string;
  const target = (repo: string, id: string): string => `${repo}/_uploads/${id}`;
  const hashStates: string[] = [];
  const startedAt: { key: string; at: Date }[] = [];
  const multipart: string[] = [];
  const upload = (repo: string, id: string, age: number | undefined, withMpu: boolean): string => {
    const dir = uploadDirPrefix(root, repo, id);
    hashStates.push(`${dir}hashstates/sha256/0`);
    if (age !== undefined) startedAt.push({ key: `${dir}startedat`, at: new Date(clock.getTime() - age) });
    if (withMpu) multipart.push(`${dir}data`);
    return target(repo, id);
  };
  const staleTargets = [
    ...Array.from({ length: spec.stale }, (_, i) => upload(pick(i), uuid(i, 1), 3 * H, true)),
    ...Array.from({ length: spec.cancelled }, (_, i) => upload(pick(i + 11), uuid(i, 2), undefined, false)),
  ];
  const freshTargets = Array.from({ length: spec.fresh }, (_, i) => upload(pick(i + 5), uuid(i, 3), 10 * 60_000, true));
  const orphanTargets = Array.from({ length: spec.orphans }, (_, i) => {
    const repo = pick(i + 3);
    multipart.push(`${uploadDirPrefix(root, repo, uuid(i, 4))}data`);
    return `${target(repo, uuid(i, 4))}/data`;
  });
  await moto.seed(bucket, hashStates, '');
  await mapLimit(startedAt, 16, async ({ key, at }) => {
    // distribution writes time.RFC3339: whole seconds, no newline.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: at.toISOString().replace(/\.\d+Z$/, 'Z') }));
  });
  await mapLimit(multipart, 16, async (key) => {
    await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  });
  return { repos, staleTargets, freshTargets, orphanTargets, keys: links.length + hashStates.length + startedAt.length };
}
