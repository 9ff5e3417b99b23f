"""moto_server for the collect-garbage bench: moto-scale.py's O(page) flat listings, and a seeding channel that
writes a body per key (links and manifests differ; moto-scale.py writes one body per batch). Speaks test/support/seeded-moto.ts's protocol, {"bucket": ..., "keys": [...], "body": ...}
on stdin, where a key may carry its own body after a NUL ("key\0body"); writes straight into moto's in-process S3
backend and prints `seeded N`. Benchmarks only.
"""
import json
import sys
from datetime import timedelta
from pathlib import Path

source = (Path(__file__).parent / "moto-scale.py").read_text()
# moto-scale.py's patches only: everything before it starts its own server and seeding loop.
exec(compile(source[: source.index("port = int(sys.argv[1])")], "moto-scale.py", "exec"))

from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.s3.models import s3_backends  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

port = int(sys.argv[1])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print(f"ready {port}", flush=True)

backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
# Seeded objects are 3 hours old: past a 1 h GC_GRACE, and older than the job's mark (it treats anything written
# since its mark began, minus a clock-skew margin, as a push in flight).
AGE = timedelta(hours=3)
for line in sys.stdin:
    if not line.strip():
        continue
    batch = json.loads(line)
    default = batch.get("body", "")
    for entry in batch["keys"]:
        key, _, body = entry.partition("\0")
        obj = backend.put_object(batch["bucket"], key, (body if _ else default).encode())
        obj.last_modified = obj.last_modified - AGE
    print(f"seeded {len(batch['keys'])}", flush=True)
server.stop()
