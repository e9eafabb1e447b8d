"""The artifact store in an S3-compatible bucket (AWS, MinIO, ...) through boto3.

`s3://bucket/prefix`: key `k` is the object `prefix/k`. Endpoint and credentials are
botocore's own chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
profiles, instance roles, and AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) for MinIO and
friends; with a custom endpoint, path-style addressing (what MinIO serves by default).
boto3 is imported on first use, so a process on the local store never pays for it.
Why boto3 and not s3fs or obstore: bench/storage_speed.py.

A published folder `K` is `K/.v-<version>/<files>` plus the manifest `K/.manifest.json`,
written LAST, that names the version and each file's size and sha256. Readers trust only
what a manifest names: files of an upload that died before its manifest, and versions a
newer manifest replaced, are garbage that `collect_garbage` deletes once older than its
grace period (a reader still downloading the previous version keeps it meanwhile).

Requests have bounded timeouts and retries (botocore's "standard" mode; AWS_MAX_ATTEMPTS
and AWS_RETRY_MODE still win), so an unreachable store raises `StorageUnavailable` in
seconds instead of hanging. botocore's DEBUG log lines carry request headers (a session
token among them), so its loggers are capped at INFO unless a level was set on them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from common.storage.base import (
    GARBAGE_GRACE_S,
    ArtifactStore,
    NotInStore,
    ObjectInfo,
    StorageError,
    StorageUnavailable,
    clean_key,
    folder_files,
    join,
)

MANIFEST = ".manifest.json"
VERSION_PREFIX = ".v-"
_VERSIONED = re.compile(r"^(?P<folder>.+)/\.v-(?P<version>[0-9a-f]+)/(?P<rel>.+)$")
#: Error codes that mean "not now": throttling, timeouts, the server's own trouble.
_TRANSIENT = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
              "InternalError", "ServiceUnavailable"}  # and every 5xx status
_MISSING = {"NoSuchKey", "404", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix`; credentials in the URL are refused."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.hostname:
        raise ValueError("an S3 artifacts URL looks like s3://bucket/prefix")
    if "@" in parts.netloc:
        raise ValueError("credentials do not belong in the artifacts URL; set "
                         "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or a profile) instead")
    if parts.query or parts.fragment:
        raise ValueError("an S3 artifacts URL takes no query or fragment: s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


def _code(exc: BaseException) -> tuple[str, str]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return str(error.get("Code") or status), str(error.get("Message") or "")


def quiet_sdk_debug_logs() -> None:
    """Cap botocore's, boto3's and s3transfer's loggers at INFO unless a level was set on
    them: their DEBUG lines print request headers, the session token among them."""
    for name in ("botocore", "boto3", "s3transfer"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


class S3Store(ArtifactStore):
    """Artifacts in `bucket` under `prefix`."""

    def __init__(self, bucket: str, prefix: str = "", *, connect_timeout_s: float = 5.0,
                 read_timeout_s: float = 30.0, max_attempts: int = 3, client=None):
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._options = (connect_timeout_s, read_timeout_s, max_attempts)
        self._client = client

    @classmethod
    def from_url(cls, url: str, **options) -> S3Store:
        return cls(*parse_s3_url(url), **options)

    def __repr__(self) -> str:
        return f"S3Store({self.url_for()!r})"

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            connect, read, attempts = self._options
            config = {"connect_timeout": connect, "read_timeout": read}
            if not (os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE")):
                config["retries"] = {"max_attempts": attempts, "mode": "standard"}
            if os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
                config["s3"] = {"addressing_style": "path"}
            quiet_sdk_debug_logs()
            with self._errors("connect", ""):
                self._client = boto3.session.Session().client("s3", config=Config(**config))
        return self._client

    def url_for(self, key: str = "") -> str:
        return "s3://" + join(self.bucket, self.prefix, key)

    def _key(self, key: str) -> str:
        return join(self.prefix, clean_key(key))

    @contextmanager
    def _errors(self, operation: str, key: str) -> Iterator[None]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
        )

        where = self.url_for(key)
        try:
            yield
        except NoCredentialsError:
            raise StorageError(operation, where, "no AWS credentials found (set "
                               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)") from None
        except (ConnectionError, HTTPClientError) as exc:
            raise StorageUnavailable(operation, where, f"cannot reach the S3 endpoint "
                                     f"({type(exc).__name__})") from None
        except ClientError as exc:
            code, message = _code(exc)
            detail = f"{code}: {message}" if message else code
            if code in _MISSING:
                raise NotInStore(operation, where, detail) from None
            if code in _TRANSIENT or code.startswith("5"):
                raise StorageUnavailable(operation, where, detail) from None
            raise StorageError(operation, where, detail) from None
        except BotoCoreError as exc:
            raise StorageError(operation, where, type(exc).__name__) from None

    def check(self) -> None:
        with self._errors("check", ""):
            self.client.head_bucket(Bucket=self.bucket)

    def ensure_bucket(self) -> bool:
        """Create the bucket unless it exists (idempotent; another process creating it at the
        same moment is fine). True when this call created it. Outside us-east-1 it is
        created in the client's region (AWS_DEFAULT_REGION / AWS_REGION)."""
        try:
            self.check()
            return False
        except NotInStore:  # head_bucket: 404, no such bucket
            pass
        region = self.client.meta.region_name
        where = {} if region in (None, "", "us-east-1", "aws-global") else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        try:
            with self._errors("create_bucket", ""):
                self.client.create_bucket(Bucket=self.bucket, **where)
        except StorageError as exc:
            if exc.detail.startswith("BucketAlreadyOwnedByYou"):
                return False
            raise
        return True

    # Objects -----------------------------------------------------------------------------

    def put_file(self, key: str, src: Path) -> ObjectInfo:
        digest = hashlib.sha256()
        with open(src, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        with open(src, "rb") as f:
            return self._put(key, f, os.fstat(f.fileno()).st_size, digest.hexdigest())

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        return self._put(key, data, len(data), hashlib.sha256(data).hexdigest())

    def _put(self, key: str, body, size: int, sha256: str) -> ObjectInfo:
        # One PUT is atomic: a reader gets the old object or the new one, never a part.
        with self._errors("put", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body,
                                   Metadata={"sha256": sha256})
        return ObjectInfo(clean_key(key), size, datetime.now(UTC), sha256)

    def get_file(self, key: str, dest: Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.fetch-{uuid.uuid4().hex[:12]}")
        try:
            with self.open(key) as body, open(tmp, "wb") as out:
                while chunk := body.read(1 << 20):
                    out.write(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def _in_folder(self, key: str) -> str | None:
        """The stored key of `key` when it is a file of a published folder (as `list`
        shows it), else None: the manifests of its parent folders, nearest first."""
        parts = clean_key(key).split("/")
        for cut in range(len(parts) - 1, 0, -1):
            folder, rel = "/".join(parts[:cut]), "/".join(parts[cut:])
            manifest = self._manifest(folder)
            if manifest is not None:
                if rel in manifest["files"]:
                    return join(folder, VERSION_PREFIX + manifest["version"], rel)
                return None
        return None

    def _get(self, key: str, stored: str | None = None):
        try:
            with self._errors("get", key):
                return self.client.get_object(Bucket=self.bucket, Key=join(self.prefix, stored or key))
        except NotInStore:
            if stored is None and (inside := self._in_folder(key)):
                return self._get(key, inside)
            raise

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        body = self._get(clean_key(key))["Body"]
        with self._errors("get", key):
            try:
                yield body
            finally:
                body.close()

    def info(self, key: str) -> ObjectInfo:
        stored = clean_key(key)
        try:
            with self._errors("info", key):
                head = self.client.head_object(Bucket=self.bucket, Key=join(self.prefix, stored))
        except NotInStore:
            if not (stored := self._in_folder(key)):
                raise
            with self._errors("info", key):
                head = self.client.head_object(Bucket=self.bucket, Key=join(self.prefix, stored))
        return ObjectInfo(clean_key(key), head["ContentLength"], head["LastModified"],
                          head.get("Metadata", {}).get("sha256"))

    def _raw(self, prefix: str) -> list[ObjectInfo]:
        """Every object under `prefix` as stored (manifests and versions included)."""
        full = join(self.prefix, clean_key(prefix) if prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        with self._errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full + "/" if full else "")
            return [ObjectInfo(o["Key"][cut:], o["Size"], o["LastModified"])
                    for page in pages for o in page.get("Contents", [])]

    def _manifest(self, folder: str) -> dict | None:
        try:
            key = join(folder, MANIFEST)
            body = self._get(key, stored=key)["Body"]  # the object itself, no fallback
            with self._errors("get", key):
                try:
                    return json.loads(body.read())
                finally:
                    body.close()
        except NotInStore:
            return None
        except ValueError:  # unreadable manifest: not a published folder
            return None

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        raw = self._raw(prefix)
        folders = {o.key.removesuffix("/" + MANIFEST) for o in raw if o.key.endswith("/" + MANIFEST)}
        current = {f: (self._manifest(f) or {}).get("version") for f in folders}
        found = []
        for o in raw:
            m = _VERSIONED.match(o.key)
            if m and current.get(m["folder"]) == m["version"]:
                found.append(ObjectInfo(join(m["folder"], m["rel"]), o.size, o.modified))
            elif not m and not o.key.endswith("/" + MANIFEST):
                found.append(o)
        return sorted(found, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def _delete_keys(self, keys: list[str], where: str) -> int:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": join(self.prefix, k)} for k in keys[start:start + 1000]]
            with self._errors("delete", where):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def delete_prefix(self, prefix: str) -> int:
        return self._delete_keys([o.key for o in self._raw(prefix)], prefix)

    # Published folders -------------------------------------------------------------------

    def publish_folder(self, key: str, src: Path) -> dict[str, ObjectInfo]:
        key, version = clean_key(key), uuid.uuid4().hex
        files = {rel: self.put_file(join(key, VERSION_PREFIX + version, rel), path)
                 for rel, path in folder_files(src)}
        manifest = {"format": 1, "version": version, "published": datetime.now(UTC).isoformat(),
                    "files": {rel: {"size": i.size, "sha256": i.sha256} for rel, i in files.items()}}
        self.put_bytes(join(key, MANIFEST), json.dumps(manifest, indent=1).encode())  # LAST
        return self._files(key, manifest)

    def _files(self, key: str, manifest: dict) -> dict[str, ObjectInfo]:
        when = datetime.fromisoformat(manifest["published"])
        return {rel: ObjectInfo(join(key, rel), f["size"], when, f["sha256"])
                for rel, f in manifest["files"].items()}

    def published(self, key: str) -> dict[str, ObjectInfo] | None:
        manifest = self._manifest(clean_key(key))
        return None if manifest is None else self._files(clean_key(key), manifest)

    def published_key(self, key: str, rel: str) -> str:
        manifest = self._manifest(clean_key(key))
        if manifest is None or rel not in manifest["files"]:
            raise NotInStore("get", self.url_for(join(key, rel)), "not in a published folder")
        return join(key, VERSION_PREFIX + manifest["version"], rel)

    def open_published(self, key: str, rel: str):
        return self.open(self.published_key(key, rel))

    def published_folders(self, prefix: str) -> list[str]:
        base = clean_key(prefix) + "/" if prefix else ""
        names = {o.key[len(base):].removesuffix("/" + MANIFEST) for o in self._raw(prefix)
                 if o.key.endswith("/" + MANIFEST)}
        return sorted(n for n in names if "/" not in n)

    def delete_folder(self, key: str) -> int:
        self.delete(join(key, MANIFEST))  # unpublished first: no reader trusts it any more
        return self.delete_prefix(key)

    def collect_garbage(self, prefix: str, older_than_s: float = GARBAGE_GRACE_S) -> int:
        raw = self._raw(prefix)
        folders = {m["folder"] for o in raw if (m := _VERSIONED.match(o.key))}
        current = {f: (self._manifest(f) or {}).get("version") for f in folders}
        cutoff = time.time() - older_than_s
        doomed = [o.key for o in raw if (m := _VERSIONED.match(o.key))
                  and current[m["folder"]] != m["version"] and o.modified.timestamp() <= cutoff]
        return self._delete_keys(doomed, prefix)
