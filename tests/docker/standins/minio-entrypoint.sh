#!/bin/sh
# As minio/minio's entrypoint: `server ...` (the compose file's command) runs `minio server ...`.
set -eu
case "${1:-}" in
    server|gateway) exec minio "$@" ;;
esac
exec "$@"
