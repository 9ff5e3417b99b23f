import { describe, expect, it } from 'vitest';
import { DEFAULT_REGISTRY_IMAGE } from '../../infra/config.ts';
import { ECR_PREFIX, pullThroughImage } from '../../infra/pull-through.ts';

const at = { registryHost: '123456789012.dkr.ecr.eu-west-1.amazonaws.com', prefix: 'docker-hub' };
const DIGEST = 'sha256:a3d8aaa63ed8681a604f1dea0aa03f100d5895b6a58ace528858a7b332415373';

describe('pullThroughImage', () => {
  it('the default image: the cached library/registry by its pinned digest, warmed by its tag', () => {
    expect(pullThroughImage(DEFAULT_REGISTRY_IMAGE, at)).toEqual({
      image: `123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub/library/registry@${DIGEST}`,
      warmImage: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub/library/registry:2.8.3',
    });
  });

  it.each([
    ['registry:2.8.3', 'docker-hub/library/registry:2.8.3'],
    ['docker.io/library/registry:2.8.3', 'docker-hub/library/registry:2.8.3'],
    ['acme/registry:1.0', 'docker-hub/acme/registry:1.0'],
    [`docker.io/acme/registry:1.0@${DIGEST}`, `docker-hub/acme/registry@${DIGEST}`],
  ])('%s → %s', (reference, path) => {
    expect(pullThroughImage(reference, at).image).toBe(`${at.registryHost}/${path}`);
  });

  it.each([
    ['ghcr.io/acme/registry:1.0', /not a Docker Hub image/],
    ['localhost:5000/registry:2', /not a Docker Hub image/],
    [`registry@${DIGEST}`, /needs a tag .*does not fetch an uncached image by digest/],
  ])('refuses %s with a message naming the image', (reference, message) => {
    expect(() => pullThroughImage(reference, at)).toThrow(message);
    expect(() => pullThroughImage(reference, at)).toThrow(reference);
  });

  it("ECR_PREFIX accepts ECR's repository prefixes only", () => {
    expect(['docker-hub', 'hub/a', 'ab'].filter((p) => ECR_PREFIX.test(p))).toEqual(['docker-hub', 'hub/a', 'ab']);
    expect(['a', 'Docker', '-hub', 'hub/', 'x'.repeat(31)].filter((p) => ECR_PREFIX.test(p))).toEqual([]);
  });
});
