"""What the artifact-store tests share: the credentials they plant, raw backend listings."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.harness.s3 import ACCESS_KEY, SECRET

__all__ = ["ACCESS_KEY", "SECRET", "free_port", "raw_keys"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_keys(store) -> list[str]:
    """Everything the backend holds, as stored (garbage, manifests and versions included)."""
    if store.is_local:
        root = Path(store.root)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))
