/**
 * The registry image through an ECR pull-through cache of Docker Hub (context ecrPullThroughCache): Docker Hub's
 * `library/registry` becomes `<account>.dkr.ecr.<region>.<suffix>/<prefix>/library/registry`, the digest pin kept.
 */

/** ECR's rule for a repository prefix (2-30 characters, lower case, `/`-separated components). */
export const ECR_PREFIX = /^(?=.{2,30}$)[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;

export interface PullThroughImage {
  /** What the instances run: the cached repository by digest (or by tag when the image has no digest). */
  readonly image: string;
  /** The same repository by tag: a first pull by digest of an uncached image fails, a pull by tag fills the cache. */
  readonly warmImage: string;
}

/**
 * Maps a Docker Hub image reference (`registry:2.8.3@sha256:…`, `docker.io/library/registry:2.8.3`) onto the
 * cache at `registryHost/prefix`. Throws for an image of another registry, or one without a tag.
 */
export function pullThroughImage(reference: string, o: { registryHost: string; prefix: string }): PullThroughImage {
  const [withTag = '', digest] = reference.split('@');
  // The tag follows the last colon, unless that colon is a registry port (a slash after it).
  const colon = withTag.lastIndexOf(':');
  const hasTag = colon > withTag.lastIndexOf('/');
  const name = hasTag ? withTag.slice(0, colon) : withTag;
  const tag = hasTag ? withTag.slice(colon + 1) : undefined;
  const parts = name.split('/');
  const first = parts[0] ?? '';
  const registry = parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : undefined;
  if (registry !== undefined && registry !== 'docker.io' && registry !== 'registry-1.docker.io') {
    throw new Error(
      `ecrPullThroughCache: registryImage ${JSON.stringify(reference)} is not a Docker Hub image (expected ` +
        `registry:2.8.3@sha256:... or docker.io/<repo>:<tag>)`,
    );
  }
  if (tag === undefined) {
    throw new Error(
      `ecrPullThroughCache: registryImage ${JSON.stringify(reference)} needs a tag (registry:2.8.3@sha256:...): ECR's ` +
        `pull-through cache does not fetch an uncached image by digest, the boot fills it by tag`,
    );
  }
  const hubRepo = registry === undefined ? parts : parts.slice(1);
  const repository = `${o.registryHost}/${o.prefix}/${(hubRepo.length === 1 ? ['library', ...hubRepo] : hubRepo).join('/')}`;
  return { image: digest ? `${repository}@${digest}` : `${repository}:${tag}`, warmImage: `${repository}:${tag}` };
}
