import { describe, expect, it } from 'vitest';
import {
  classifyKey,
  hashStateOffset,
  isRepositoryName,
  normalizeRoot,
  parseUploadDataKey,
  parseUploadKey,
  repositoriesPrefix,
  uploadDataKey,
  uploadDirPrefix,
  v2Prefix,
} from '../../shared/registry-layout.ts';

const ID = '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b';
const R = 'docker/registry/v2/repositories/';

describe('registry root', () => {
  it.each([
    [undefined, ''],
    ['', ''],
    ['/', ''],
    ['/fleet/a', 'fleet/a'],
    ['fleet/a/', 'fleet/a'],
    ['//fleet/a//', 'fleet/a'],
  ])('normalizeRoot(%j) = %j', (root, expected) => {
    expect(normalizeRoot(root)).toBe(expected);
  });

  it('builds prefixes with and without a root', () => {
    expect(v2Prefix('')).toBe('docker/registry/v2/');
    expect(repositoriesPrefix('/fleet/a')).toBe('fleet/a/docker/registry/v2/repositories/');
    expect(uploadDirPrefix('/fleet/a', 'org/app', ID)).toBe(`fleet/a/docker/registry/v2/repositories/org/app/_uploads/${ID}/`);
    expect(uploadDataKey('', 'org/app', ID)).toBe(`${R}org/app/_uploads/${ID}/data`);
  });
});

describe('isRepositoryName (distribution grammar)', () => {
  it.each([
    'nginx',
    'library/nginx',
    'org/team/app',
    'my_uploads',
    'team/x_uploads',
    'a__b',
    'a.b-c',
    'a---b',
    'localhost:5000/app',
    'Host.Example/app',
  ])('accepts %s', (name) => {
    expect(isRepositoryName(name)).toBe(true);
  });
  it.each(['', '/nginx', 'nginx/', 'a//b', '_uploads', 'a/_uploads', 'Nginx', 'a/../b', '..', 'a_', '-a', 'a___b', 'a/B', 'x'.repeat(256)])(
    'rejects %j',
    (name) => {
      expect(isRepositoryName(name)).toBe(false);
    },
  );
});

describe('classifyKey', () => {
  it.each([
    [`${R}library/nginx/_uploads/${ID}/startedat`, { kind: 'upload', repository: 'library/nginx', uploadId: ID, rest: 'startedat' }],
    [
      `${R}org/team/app/_uploads/${ID}/hashstates/sha256/1234`,
      { kind: 'upload', repository: 'org/team/app', uploadId: ID, rest: 'hashstates/sha256/1234' },
    ],
    [`${R}app/_uploads/${ID}/data`, { kind: 'upload', repository: 'app', uploadId: ID, rest: 'data' }],
    [`${R}app/_uploads/${ID}/`, { kind: 'upload', repository: 'app', uploadId: ID, rest: '' }],
    // Names that contain `_uploads` as a substring are names.
    [`${R}my_uploads/_uploads/${ID}/startedat`, { kind: 'upload', repository: 'my_uploads', uploadId: ID, rest: 'startedat' }],
    [`${R}team/x_uploads/_layers/sha256/ab/link`, { kind: 'repository-data', repository: 'team/x_uploads' }],
    // Look-alikes: `_uploads` below another section is not an upload directory.
    [`${R}app/_layers/_uploads/${ID}/data`, { kind: 'repository-data', repository: 'app' }],
    [`${R}app/_manifests/tags/_uploads/${ID}/startedat`, { kind: 'repository-data', repository: 'app' }],
    // Inside _uploads but not in a <uuid>/ directory: never an upload.
    [`${R}app/_uploads/`, { kind: 'uploads-other', repository: 'app', rest: '' }],
    [`${R}app/_uploads/not-a-uuid/startedat`, { kind: 'uploads-other', repository: 'app', rest: 'not-a-uuid/startedat' }],
    [`${R}app/_uploads/${ID.toUpperCase()}/startedat`, { kind: 'uploads-other', repository: 'app', rest: `${ID.toUpperCase()}/startedat` }],
    [`${R}app/_uploads/${ID}`, { kind: 'uploads-other', repository: 'app', rest: ID }],
    // Not the registry's shape.
    [`${R}_uploads/${ID}/startedat`, { kind: 'foreign' }],
    [`${R}App/_uploads/${ID}/startedat`, { kind: 'foreign' }],
    [`${R}a//b/_uploads/${ID}/startedat`, { kind: 'foreign' }],
    [`${R}app/nothing`, { kind: 'foreign' }],
    [`docker/registry/v2/blobs/sha256/ab/${'ab'.repeat(32)}/data`, { kind: 'foreign' }],
    [`other/docker/registry/v2/repositories/app/_uploads/${ID}/data`, { kind: 'foreign' }],
  ])('%s', (key, expected) => {
    expect(classifyKey(key, '')).toEqual(expected);
  });

  it('honours the registry root', () => {
    const key = `fleet/a/${R}app/_uploads/${ID}/startedat`;
    expect(parseUploadKey(key, '/fleet/a/')).toEqual({ repository: 'app', uploadId: ID, rest: 'startedat' });
    expect(parseUploadKey(key, '')).toBeUndefined();
    expect(parseUploadKey(`${R}app/_uploads/${ID}/startedat`, 'fleet/a')).toBeUndefined();
    expect(parseUploadKey(`fleet/ab/${R}app/_uploads/${ID}/startedat`, 'fleet/a')).toBeUndefined();
  });

  it('recognises only the data key as a multipart upload key', () => {
    expect(parseUploadDataKey(`${R}app/_uploads/${ID}/data`, '')).toEqual({ repository: 'app', uploadId: ID, rest: 'data' });
    expect(parseUploadDataKey(`${R}app/_uploads/${ID}/startedat`, '')).toBeUndefined();
    expect(parseUploadDataKey(`${R}app/_layers/_uploads/${ID}/data`, '')).toBeUndefined();
  });

  it('reads hash-state offsets', () => {
    expect(hashStateOffset('hashstates/sha256/0')).toBe(0);
    expect(hashStateOffset('hashstates/sha256/1048576')).toBe(1_048_576);
    expect(hashStateOffset('startedat')).toBeUndefined();
    expect(hashStateOffset('hashstates/sha256/x')).toBeUndefined();
  });
});
