#!/opt/moto/bin/python
"""Stand-in for MinIO's `mc`: only `mc ready <alias>`, the compose file's healthcheck.

Ready once the stand-in server has replayed its recording (its ready file) and port 9000
takes connections. A TCP connect, not an HTTP request: moto's recorder would record (and
replay at every start) each probe."""

import os
import socket
import sys

if sys.argv[1:2] != ["ready"]:
    print("mc stand-in: only `mc ready ALIAS` is implemented", file=sys.stderr)
    sys.exit(2)
if not os.path.exists("/tmp/minio-standin.ready"):
    sys.exit(1)
try:
    socket.create_connection(("127.0.0.1", 9000), 3).close()
except OSError:
    sys.exit(1)
print("The cluster is ready")
