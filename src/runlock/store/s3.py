"""Objects in an S3-compatible bucket: ``s3://BUCKET/PREFIX``, keys ``PREFIX/objects/ab/cdef…``.

Install with ``pip install 'runlock[s3]'``. The endpoint comes from the store's config
(``s3_endpoint_url``) or ``RUNLOCK_S3_ENDPOINT_URL``, so MinIO, Ceph or a local test server work
like AWS. A PUT is atomic in S3; an object that already exists is never uploaded again (and
the upload asks the server to refuse overwriting where it supports ``If-None-Match``).
botocore's errors are translated here into runlock's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from runlock.errors import InvalidInput, NotFound, StoreError
from runlock.hashing import ALGORITHM, hex_of
from runlock.store.objects import ObjectStore

try:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError
except ModuleNotFoundError as e:  # pragma: no cover - exercised only without the extra
    raise StoreError("This store keeps its objects in S3, but boto3 is not installed.",
                     hint="Install it with `pip install 'runlock[s3]'`.") from e

ENDPOINT_ENV = "RUNLOCK_S3_ENDPOINT_URL"


def parse_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise InvalidInput(f"{url!r} is not an S3 location; expected s3://BUCKET/PREFIX.")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


class S3ObjectStore(ObjectStore):
    def __init__(self, url: str, *, endpoint_url: str | None = None, scratch: Path | None = None) -> None:
        self.url = url
        self.bucket, prefix = parse_url(url)
        self.prefix = f"{prefix}/objects/" if prefix else "objects/"
        self.endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV)
        self._scratch = scratch
        self._client = None

    @property
    def client(self):  # noqa: ANN201
        if self._client is None:
            self._client = boto3.client("s3", endpoint_url=self.endpoint_url,
                                        config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}))
        return self._client

    def key_of(self, oid: str) -> str:
        hx = hex_of(oid)
        return f"{self.prefix}{hx[:2]}/{hx[2:]}"

    def scratch_dir(self) -> Path:
        return self._scratch or super().scratch_dir()

    def has(self, oid: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key_of(oid))
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error("check", oid, e) from e
        except BotoCoreError as e:
            raise self._error("check", oid, e) from e

    def iter_ids(self) -> Iterator[str]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    rest = item["Key"][len(self.prefix):]
                    if len(rest) == 65 and rest[2] == "/":
                        yield f"{ALGORITHM}:{rest[:2]}{rest[3:]}"
        except (ClientError, BotoCoreError) as e:
            raise self._error("list", self.url, e) from e

    def _open(self, oid: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key_of(oid))["Body"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise NotFound("object", oid, hint="Run `runlock fsck` to see what else is missing.") from None
            raise self._error("read", oid, e) from e
        except BotoCoreError as e:
            raise self._error("read", oid, e) from e

    def _write_new(self, oid: str, src: Path) -> None:
        if self.has(oid):
            return
        try:
            with open(src, "rb") as f:
                self.client.put_object(Bucket=self.bucket, Key=self.key_of(oid), Body=f,
                                       ChecksumAlgorithm="SHA256", IfNoneMatch="*")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return  # another writer stored the same bytes first
            raise self._error("write", oid, e) from e
        except BotoCoreError as e:
            raise self._error("write", oid, e) from e

    def delete(self, oid: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key_of(oid))
        except (ClientError, BotoCoreError) as e:
            raise self._error("delete", oid, e) from e

    def _error(self, verb: str, what: str, e: Exception) -> StoreError:
        return StoreError(f"Cannot {verb} {what} in {self.url}: {e}.",
                          hint="Check the bucket, the credentials and RUNLOCK_S3_ENDPOINT_URL.")
