"""moto_server with a fast seeding channel, for benchmarks only.

Serves moto (all services) on 127.0.0.1:PORT like `moto_server`, and reads JSON lines on stdin:
  {"bucket": "name", "keys": ["key", ...], "body": "text"}
Each key is written straight into moto's in-process S3 backend (~15k keys/s instead of ~240 PUT/s over
HTTP), then one line `seeded N` is printed. The bucket must already exist (create it over HTTP).
Depends on moto 5.x internals (s3_backends, S3Backend.put_object); only the benchmark uses it.
"""
import json
import sys

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

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
