"""Where trained models are kept, and the one each process serves from.

Versions are UTC timestamps (`20261201T031500Z`), so they sort by age. `models/recommendation/{version}.npz` holds
an artefact (model.dumps: arrays only, no pickle); `models/recommendation/current` names the version to serve,
written after the artefact, so a reader never finds a pointer to a missing file. Stored in the media store's
backend (the S3 bucket, or files under data_dir/media): the LocalDiskStorage route serves image keys only, and
an artefact holds public recipes only, so nothing private is exposed even where a CDN fronts the bucket.

The version is the recommendation lists' generation: a cached list records the version it was ranked with, and a
process serving a newer model ranks again instead of serving it (service.py). No key is scanned or deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import sparse

from potluck.media.storage import LocalDiskStorage, S3Storage, check_key
from potluck.recommendation.dataset import IntArray
from potluck.recommendation.evaluation import top_candidates
from potluck.recommendation.model import Artefact, Tastes, capped, declared_rows, loads, score, similar_items

logger = logging.getLogger("potluck.recommendation")

PREFIX = "models/recommendation/"
CURRENT = PREFIX + "current"


def artefact_key(version: str) -> str:
    return f"{PREFIX}{version}.npz"


def new_version(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


class ArtefactStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes | None:
        """The bytes at `key`, or None when there is nothing there."""


class LocalArtefacts:
    """Files under the media store's root (the embedded default)."""

    def __init__(self, storage: LocalDiskStorage) -> None:
        self.storage = storage

    async def put(self, key: str, data: bytes) -> None:
        await self.storage.put(key, data, content_type="application/octet-stream", cache_control="no-store")

    async def get(self, key: str) -> bytes | None:
        path: Path = self.storage.root / check_key(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None


class S3Artefacts:
    """Objects in the media bucket, through its client."""

    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage

    async def put(self, key: str, data: bytes) -> None:
        await self.storage.put(key, data, content_type="application/octet-stream", cache_control="private, no-store")

    async def get(self, key: str) -> bytes | None:
        client, bucket = self.storage.client, self.storage.bucket

        def read() -> bytes | None:
            try:
                return bytes(client.get_object(Bucket=bucket, Key=check_key(key))["Body"].read())
            except client.exceptions.NoSuchKey:
                return None

        return await asyncio.to_thread(read)


async def publish(store: ArtefactStore, version: str, data: bytes) -> None:
    """The artefact first, then the pointer: a reader never sees a version whose file is not there yet."""
    await store.put(artefact_key(version), data)
    await store.put(CURRENT, version.encode())


@dataclass(slots=True)
class Served:
    """One loaded artefact with the indexes serving needs."""

    artefact: Artefact
    index: dict[uuid.UUID, int] = field(init=False)
    author_code: IntArray = field(init=False)
    authors: dict[uuid.UUID, int] = field(init=False)
    cuisine_index: dict[str, int] = field(init=False)
    tag_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {recipe_id: i for i, recipe_id in enumerate(self.artefact.recipe_ids)}
        self.cuisine_index = {name: i for i, name in enumerate(self.artefact.cuisine_names)}
        self.tag_index = {name: i for i, name in enumerate(self.artefact.tag_names)}
        self.authors = {}
        codes = [self.authors.setdefault(a, len(self.authors)) for a in self.artefact.author_ids]
        self.author_code = np.asarray(codes, dtype=np.int64)

    @property
    def version(self) -> str:
        return self.artefact.version

    def recommend(
        self,
        viewer_id: uuid.UUID,
        likes: Sequence[tuple[uuid.UUID, float]],
        seen: Sequence[uuid.UUID],
        n: int,
        tastes: Tastes | None = None,
    ) -> list[uuid.UUID]:
        """The viewer's top `n`: never their own recipes nor any they favorited or rated, capped per author and
        cuisine. `likes` are (recipe, like weight) pairs; recipes the model does not know are left out. Declared
        `tastes` (cuisine names, tag names) join the profile: with no likes, the list is the popular recipes of
        those tastes."""
        model = self.artefact.model
        n_items = len(self.artefact.recipe_ids)
        cols = [self.index[r] for r, w in likes if r in self.index and w > 0]
        weights = [w for r, w in likes if r in self.index and w > 0]
        history = sparse.csr_matrix((weights, ([0] * len(cols), cols)), shape=(1, n_items))
        scores = score(model, history, declared=self._declared(tastes))[0]
        excluded = ~self.artefact.public
        excluded[[self.index[r] for r in seen if r in self.index]] = True
        own = self.authors.get(viewer_id)
        if own is not None:
            excluded[self.author_code == own] = True
        ranked = top_candidates(scores, excluded, max(3 * n, 60))
        p = model.params
        page = capped(ranked, n, self.author_code, self.artefact.cuisine, p.per_author, p.per_cuisine)
        return [self.artefact.recipe_ids[i] for i in page]

    def _declared(self, tastes: Tastes | None) -> sparse.csr_matrix | None:
        """Declared tastes as a content row (names the model does not know are ignored); None for none."""
        if tastes is None:
            return None
        cuisines = [self.cuisine_index[c] for c in tastes[0] if c in self.cuisine_index]
        tags = [self.tag_index[t] for t in tastes[1] if t in self.tag_index]
        if not cuisines and not tags:
            return None
        n_cuisines = len(self.artefact.cuisine_names)
        shape = self.artefact.model.content.shape[1]
        return declared_rows([cuisines], [tags], n_cuisines, shape, self.artefact.model.params)

    def similar(self, recipe_id: uuid.UUID, n: int) -> list[uuid.UUID] | None:
        """Recipes like `recipe_id` (public ones only), best first; None when the model does not know it."""
        item = self.index.get(recipe_id)
        if item is None:
            return None
        found = similar_items(self.artefact.model, item, n + 10)
        return [self.artefact.recipe_ids[i] for i, _ in found if self.artefact.public[i]][:n]


class ModelHolder:
    """The model this process serves: loaded from the store, checked for a newer version at most every
    `check_seconds` (`refresh`), swapped in whole (a request sees one model or the other, never a mix)."""

    def __init__(self, store: ArtefactStore, check_seconds: float = 60.0) -> None:
        self.store = store
        self.check_seconds = check_seconds
        self.current: Served | None = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def version(self) -> str | None:
        return None if self.current is None else self.current.version

    async def refresh(self, *, force: bool = False) -> bool:
        """Load the published version if it is newer than the one served. True when a new one was loaded."""
        if not force and (time.monotonic() - self._checked < self.check_seconds or self._lock.locked()):
            return False  # checked lately, or another request is checking: serve what is loaded, do not wait
        async with self._lock:
            if not force and time.monotonic() - self._checked < self.check_seconds:
                return False
            self._checked = time.monotonic()
            try:
                pointer = await self.store.get(CURRENT)
                if pointer is None:
                    return False
                version = pointer.decode().strip()
                if self.version is not None and version <= self.version:
                    return False
                data = await self.store.get(artefact_key(version))
                if data is None:
                    return False
                served = await asyncio.to_thread(lambda: Served(loads(data)))
            except Exception:
                # A store that cannot be read must not take recommendations down: the current model (or the
                # formula) keeps serving, and the next check tries again.
                logger.exception("recommendation.model_load_failed")
                return False
            self.current = served
            logger.info("recommendation.model_loaded", extra={"version": version})
            return True
