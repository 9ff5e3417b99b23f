"""moto_server for the scale benchmark: moto-seeded.py's seeding channel, plus a sorted key index so a flat
ListObjectsV2 page costs O(page) instead of moto's O(bucket) (moto copies, filters and sorts every key of the
bucket on each request, ~6 s a page at 10^6 keys), and that page written as XML directly (moto's model-driven
serializer takes ~0.3 s for 1000 keys). Only listings without a delimiter, encoding type or owner take this path;
their answers carry moto's own keys, order and continuation tokens. Benchmarks only.
Depends on moto 5.x internals (s3_backends, S3Backend.list_objects_v2, _VersionedKeyStore) and sortedcontainers.
"""
import json
import sys

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import FakeDeleteMarker, S3Backend, s3_backends
from moto.s3.responses import S3Response
from moto.s3.utils import _VersionedKeyStore
from moto.server import ThreadedMotoServer
from moto.utilities.utils import md5_hash
from sortedcontainers import SortedList

INDEX = "_bench_sorted_names"


def index_of(store):
    names = store.__dict__.get(INDEX)
    if names is None:
        names = SortedList(dict.keys(store))
        store.__dict__[INDEX] = names
    return names


def track(method, on_change):
    def wrapper(self, key, *args, **kwargs):
        existed = dict.__contains__(self, key)
        result = method(self, key, *args, **kwargs)
        names = self.__dict__.get(INDEX)
        if names is not None:
            on_change(names, key, existed, dict.__contains__(self, key))
        return result

    return wrapper


def on_change(names, key, existed, exists):
    if exists and not existed:
        names.add(key)
    elif existed and not exists:
        names.discard(key)


_VersionedKeyStore.__setitem__ = track(_VersionedKeyStore.__setitem__, on_change)
_VersionedKeyStore.setlist = track(_VersionedKeyStore.setlist, on_change)
_VersionedKeyStore.pop = track(_VersionedKeyStore.pop, on_change)

original_list_v2 = S3Backend.list_objects_v2


def list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):
    if delimiter:
        return original_list_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
    names = index_of(bucket.keys)
    prefix = prefix or ""
    limit = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
    i = names.bisect_left(prefix)
    if limit:
        i = max(i, names.bisect_right(limit))
    out = []
    while i < len(names) and len(out) <= max_keys:
        name = names[i]
        if not name.startswith(prefix):
            break
        key = bucket.keys.get(name)
        if key is not None and not isinstance(key, FakeDeleteMarker):
            out.append(key)
        i += 1
    if max_keys == 0:
        return [], False, None
    if len(out) > max_keys:
        out = out[:max_keys]
        token = md5_hash(out[-1].name.encode("utf-8")).hexdigest()
        self._pagination_tokens[token] = out[-1].name
        return out, True, token
    return out, False, None


S3Backend.list_objects_v2 = list_objects_v2


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


original_response = S3Response.list_objects_v2


def list_objects_v2_response(self):
    q = self.querystring
    if any(k in q for k in ("delimiter", "encoding-type", "fetch-owner")):
        return original_response(self)
    bucket = self.backend.get_bucket(self.bucket_name)
    token = q.get("continuation-token", [None])[0]
    prefix = self._get_querystring(self.request, self.uri).get("prefix", [None])[0]
    if isinstance(prefix, bytes):
        prefix = prefix.decode("utf-8")
    max_keys = int(q.get("max-keys", [1000])[0])
    start_after = q.get("start-after", [None])[0]
    keys, truncated, next_token = self.backend.list_objects_v2(bucket, prefix, None, token, start_after, max_keys)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
        f"<Name>{esc(bucket.name)}</Name><Prefix>{esc(prefix or '')}</Prefix><MaxKeys>{max_keys}</MaxKeys>",
        f"<KeyCount>{len(keys)}</KeyCount><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
    ]
    for k in keys:
        parts.append(
            f"<Contents><Key>{esc(k.name)}</Key><LastModified>{k.last_modified_ISO8601}</LastModified>"
            f"<ETag>{esc(k.etag)}</ETag><Size>{k.size}</Size><StorageClass>{k.storage_class}</StorageClass></Contents>"
        )
    if token:
        parts.append(f"<ContinuationToken>{esc(token)}</ContinuationToken>")
    if next_token:
        parts.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
    if start_after and not token:
        parts.append(f"<StartAfter>{esc(start_after)}</StartAfter>")
    parts.append("</ListBucketResult>")
    return 200, {"Content-Type": "application/xml"}, "".join(parts)


S3Response.list_objects_v2 = list_objects_v2_response

port = int(sys.argv[1])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print(f"ready {port}", flush=True)

backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
for line in sys.stdin:
    if not line.strip():
        continue
    batch = json.loads(line)
    body = batch.get("body", "").encode()
    for key in batch["keys"]:
        backend.put_object(batch["bucket"], key, body)
    print(f"seeded {len(batch['keys'])}", flush=True)
server.stop()
