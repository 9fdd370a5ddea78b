"""Where image variants are kept: a small protocol and two adapters, chosen in bootstrap by settings.

`LocalDiskStorage` is the embedded default (files under data_dir/media, served by the app at /media);
`S3Storage` talks to any S3-protocol endpoint (AWS, MinIO, moto) with a CDN in front. Both are idempotent:
putting a key again writes the same bytes (keys are content-addressed), deleting a missing key is no error.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from potluck.kit.media_keys import PRIVATE_CACHE_CONTROL, is_image_key
from potluck.media.signing import UrlSigner

T = TypeVar("T")


class InvalidKeyError(ValueError):
    """A key that could leave the storage root (`..`, absolute, empty segments)."""


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise InvalidKeyError(f"invalid storage key {key!r}")
    return key


class ImageStorage(Protocol):
    async def put(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        """Store `data` at `key` (replacing what is there), durably, before returning."""

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix`."""

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove `keys`; keys that are already gone are not an error."""

    async def copy(self, source: str, target: str, *, content_type: str, cache_control: str) -> None:
        """Store the bytes of `source` at `target` too (re-keying an image when its recipe changes visibility)."""

    def signed_url(self, key: str, expires_in: int) -> str:
        """A URL that GETs `key` for `expires_in` seconds, whatever the key's public access."""

    async def aclose(self) -> None: ...


class LocalDiskStorage:
    """Files under `root`, one per key. Writes go to a temporary file renamed into place (never half a file)."""

    def __init__(self, root: Path, signer: UrlSigner | None = None) -> None:
        self.root = root.absolute()
        self.signer = signer

    def path_for(self, key: str) -> Path | None:
        """The file holding `key`, if it is an image key and the file exists (what the /media route serves).

        Only keys `media/keys.py` makes: not an upload's temporary file, and no over-long name reaches the disk
        (ENAMETOOLONG is an OSError that `is_file` does not swallow)."""
        if not is_image_key(key):
            return None
        try:
            path = self.root / check_key(key)
            return path if path.is_file() else None
        except (InvalidKeyError, OSError):
            return None

    async def put(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        # The content type follows from the extension when the file is served; caching is the route's header.
        await asyncio.to_thread(self._write, self.root / check_key(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # on disk before the transaction that points at it commits
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    async def copy(self, source: str, target: str, *, content_type: str, cache_control: str) -> None:
        data = await asyncio.to_thread((self.root / check_key(source)).read_bytes)
        await self.put(target, data, content_type=content_type, cache_control=cache_control)

    def signed_url(self, key: str, expires_in: int) -> str:
        if self.signer is None:
            raise RuntimeError("LocalDiskStorage has no signer: signed URLs need one")
        return self.signer.url(check_key(key), int(time.time()) + expires_in)

    async def list_keys(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> list[str]:
        # Prefixes end at a directory boundary here ("[private/]recipes/{id}/"); walk just that directory.
        directory = self.root / prefix.rstrip("/") if prefix.endswith("/") else self.root
        if not directory.is_dir():
            return []
        keys = []
        for path in directory.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    async def delete(self, keys: Sequence[str]) -> None:
        await asyncio.to_thread(self._delete, [check_key(k) for k in keys])

    def _delete(self, keys: list[str]) -> None:
        parents: set[Path] = set()
        for key in keys:
            path = self.root / key
            path.unlink(missing_ok=True)
            # Empty directories below the top level go too ("recipes/" stays: uploads of other recipes use it).
            # ("private/recipes/" stays for the same reason).
            parents.update(
                p
                for p in path.parents
                if p.is_relative_to(self.root) and _depth(p, self.root) >= 2 and p != self.root / "private" / "recipes"
            )
        for directory in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()  # only when empty
            except OSError:
                pass

    async def aclose(self) -> None:
        return None


def _depth(path: Path, root: Path) -> int:
    return len(path.relative_to(root).parts)


class S3Storage:
    """An S3 bucket through boto3. boto3 is synchronous: its calls run on a small thread pool of their own."""

    def __init__(self, client: Any, bucket: str, *, max_workers: int = 8) -> None:
        self.client = client
        self.bucket = bucket
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="potluck-s3")

    @classmethod
    def connect(
        cls,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        timeout_seconds: float,
        max_workers: int = 8,
    ) -> S3Storage:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=max_workers,
            # Endpoints other than AWS's (MinIO, moto, Ceph) rarely have a DNS name per bucket.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            # SigV4 for presigned GETs too (private images): an expiry of up to 7 days, no SigV2.
            signature_version="s3v4",
        )
        session = boto3.session.Session()
        client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        return cls(client, bucket, max_workers=max_workers)

    async def _call(self, fn: Any, /, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, **kwargs))

    async def put(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        await self._call(
            self.client.put_object,
            Bucket=self.bucket,
            Key=check_key(key),
            Body=data,
            ContentType=content_type,
            CacheControl=cache_control,
        )

    async def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token is not None:
                kwargs["ContinuationToken"] = token
            page = await self._call(self.client.list_objects_v2, **kwargs)
            keys.extend(item["Key"] for item in page.get("Contents", ()))
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    async def copy(self, source: str, target: str, *, content_type: str, cache_control: str) -> None:
        await self._call(
            self.client.copy_object,
            Bucket=self.bucket,
            Key=check_key(target),
            CopySource={"Bucket": self.bucket, "Key": check_key(source)},
            MetadataDirective="REPLACE",
            ContentType=content_type,
            CacheControl=cache_control,
        )

    def signed_url(self, key: str, expires_in: int) -> str:
        # Signing is local (no request): a presigned GET, whose response is never kept by a shared cache.
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": check_key(key), "ResponseCacheControl": PRIVATE_CACHE_CONTROL},
            ExpiresIn=expires_in,
        )
        return url

    async def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": check_key(k)} for k in keys[start : start + 1000]]
            result = await self._call(
                self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            errors = result.get("Errors") or []
            if errors:
                # Raise, so the outbox retries the event: a partial delete is finished on the next delivery.
                raise OSError(f"S3 refused to delete {len(errors)} object(s): {errors[0]}")

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.client.close)
