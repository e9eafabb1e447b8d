"""Stand-in for the `minio` binary of minio/minio (Docker Hub is out of reach in CI):
moto's S3 server on MinIO's command line, `minio server DIR [--address :9000]
[--console-address :9001]`.

moto keeps buckets in memory. So that a bucket outlives `docker compose down` / `up` (as
MinIO's does, on its volume), every request is appended to DIR/.moto-recording (moto's own
recorder) and replayed at the next start, before the stand-in reports ready. Only what
the test needs: no console (the console address is accepted and ignored), any credentials
accepted (moto checks no signature), no multipart upload survives a restart (their ids
are random; the artifact store uses single PUTs).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

READY = Path("/tmp/minio-standin.ready")


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[-1])


def keep_whole_lines(recording: Path) -> None:
    """Drop a last line cut short (the container killed while it was being written)."""
    if not recording.is_file():
        return
    text = recording.read_bytes()
    if text and not text.endswith(b"\n"):
        recording.write_bytes(text[: text.rfind(b"\n") + 1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="minio")
    sub = parser.add_subparsers(dest="command", required=True)
    server = sub.add_parser("server")
    server.add_argument("dirs", nargs="+")
    server.add_argument("--address", default=":9000")
    server.add_argument("--console-address", default=":9001")
    args, _ignored = parser.parse_known_args(argv)
    data = Path(args.dirs[0])
    data.mkdir(parents=True, exist_ok=True)
    recording = data / ".moto-recording"
    os.environ["MOTO_ENABLE_RECORDING"] = "True"  # read when moto is imported
    os.environ["MOTO_RECORDER_FILEPATH"] = str(recording)
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    # One request at a time into the recording (the server is threaded; a large body is
    # written in several chunks, which two requests could interleave).
    lock, record = threading.Lock(), recorder._record_request

    def record_one(*a, **kw):
        with lock:
            return record(*a, **kw)

    recorder._record_request = record_one
    keep_whole_lines(recording)
    port = port_of(args.address)
    READY.unlink(missing_ok=True)
    moto = ThreadedMotoServer(ip_address="0.0.0.0", port=port, verbose=False)
    moto.start()
    if recording.is_file() and recording.stat().st_size:
        recorder.replay_recording(target_host=f"http://127.0.0.1:{port}")
        print(f"replayed {recording} into the S3 server", flush=True)
    READY.touch()
    print(f"S3 API on :{port} (moto stand-in for MinIO; data replayed from {recording})",
          flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    READY.unlink(missing_ok=True)
    moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
