"""Recipe images: replace, remove, sweep. Never commits: the request (or the relay's handler) owns the transaction.

An upload is decoded and encoded before any transaction begins (CPU in a thread, a few at a time), then the
recipe row is locked, the variants are written to storage, and the row is pointed at them; the replaced image is
deleted after commit by the outbox (`recipe.image_replaced` → media.sweep). Objects are written before the commit
that references them, so a committed row never names a missing object; a rollback leaves the old image in place
and the new objects orphaned until the recipe's next sweep.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import secrets
import uuid
from concurrent.futures import TimeoutError as FutureTimeoutError

from pebble import ProcessExpired, ProcessPool

from potluck.config import MediaSettings
from potluck.db.session import ReadSession, WriteSession
from potluck.errors import ForbiddenError, NotFoundError, PreconditionFailedError, ServiceUnavailableError
from potluck.kit.etag import if_match_satisfied
from potluck.kit.media_keys import (
    CACHE_CONTROL,
    CONTENT_TYPE,
    DEFAULT_VARIANT,
    EXTENSION,
    PRIVATE_CACHE_CONTROL,
    VARIANTS,
    image_prefix,
    image_urls,
    is_private_key,
    public_url,
    recipe_prefix,
    rekeyed,
    variant_keys,
)
from potluck.media.processing import (
    ImageLimits,
    ImageRejectedError,
    ImageTooSlowError,
    ProcessedImage,
    VariantSpec,
    check_size,
    process_image,
    warm_up,
)
from potluck.media.schemas import RecipeImageRead, VariantRead
from potluck.media.storage import ImageStorage, LocalDiskStorage
from potluck.recipe.models import Recipe
from potluck.recipe.repository import RecipeRepository
from potluck.recipe.schemas import RecipeImages
from potluck.recipe.service import RecipeService

logger = logging.getLogger("potluck.media")


class MediaService:
    def __init__(
        self,
        storage: ImageStorage,
        recipes: RecipeService,
        settings: MediaSettings,
        *,
        local_files: LocalDiskStorage | None = None,
    ) -> None:
        self.storage = storage
        # The storage the app itself serves at /media (the embedded default); None behind S3 and a CDN.
        self.local_files = local_files
        self.recipes = recipes
        self.settings = settings
        self.limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
        self.variants = (
            VariantSpec("thumb", settings.thumb_width),
            VariantSpec("medium", settings.medium_width),
            VariantSpec("large", settings.large_width),
        )
        # Decoding a 40 MP upload holds ~160 MB: only a few at once, whatever the number of requests.
        self._processing = asyncio.Semaphore(settings.processing_concurrency)
        # Uploads admitted to wait for (or be in) processing; past this, 503 at once rather than a growing queue
        # of 10 MB bodies in memory.
        self._admitted = 0
        self._max_admitted = 2 * settings.processing_concurrency
        self._pool: ProcessPool | None = None  # started at the first upload: most processes never get one

    def check_size(self, size: int) -> None:
        """413 once an upload being read passes media.max_upload_bytes."""
        check_size(size, self.limits)

    async def replace_image(
        self,
        session: WriteSession,
        recipe_id: uuid.UUID,
        user_id: uuid.UUID,
        upload: bytes,
        if_match: str | None = None,
    ) -> RecipeImageRead:
        """Make `upload` the recipe's image (author only); the image it replaces is deleted after commit."""
        await self._check_author(recipe_id, user_id)  # no decoding for callers who may not change the recipe
        processed = await self._process(upload)
        recipe = await self._lock(session, recipe_id, user_id, if_match)  # the authoritative check
        private = not recipe.is_public  # a private recipe's image has no public URL (kit/media_keys.py)
        keys = variant_keys(recipe.id, processed.digest, private=private)
        cache_control = PRIVATE_CACHE_CONTROL if private else CACHE_CONTROL
        # Under the row lock (media.sweep takes it too) and before the commit that points at them.
        try:
            await asyncio.gather(
                *(
                    self.storage.put(
                        keys[variant.name], variant.data, content_type=CONTENT_TYPE, cache_control=cache_control
                    )
                    for variant in processed.variants
                )
            )
        except Exception as exc:  # S3 (botocore) or the disk: the upload is not lost, it was never accepted
            logger.warning("media.storage_failed", extra={"recipe_id": str(recipe.id), "error": repr(exc)})
            raise ServiceUnavailableError(
                "the image store did not take the upload; retry shortly", headers={"Retry-After": "5"}
            ) from exc
        doc = await self.recipes.set_image(session, recipe, keys[DEFAULT_VARIANT])
        logger.info(
            "media.image_replaced",
            extra={"recipe_id": str(recipe.id), "digest": processed.digest, "format": processed.source_format},
        )
        return self._read(recipe.id, doc["version"], keys[DEFAULT_VARIANT], processed)

    async def remove_image(
        self, session: WriteSession, recipe_id: uuid.UUID, user_id: uuid.UUID, if_match: str | None = None
    ) -> None:
        """Remove the recipe's image (author only; nothing to do without one); its objects go after commit."""
        recipe = await self._lock(session, recipe_id, user_id, if_match)
        if recipe.image_key is not None:
            await self.recipes.set_image(session, recipe, None)

    async def sweep(self, session: WriteSession, recipe_id: uuid.UUID) -> int:
        """Delete the recipe's stored objects that its row does not point at (all of them once it is deleted)."""
        recipe = await RecipeRepository(session).get_for_update(recipe_id)
        current = image_prefix(recipe.image_key) if recipe is not None and recipe.image_key else None
        stored = [
            *await self.storage.list_keys(recipe_prefix(recipe_id)),
            *await self.storage.list_keys(recipe_prefix(recipe_id, private=True)),
        ]
        stale = [key for key in stored if current is None or not key.startswith(current)]
        if stale:
            await self.storage.delete(stale)
            logger.info("media.swept", extra={"recipe_id": str(recipe_id), "deleted": len(stale)})
        return len(stale)

    async def rekey(self, session: WriteSession, recipe_id: uuid.UUID) -> bool:
        """Move the image of a recipe that changed visibility to a fresh key (private or public root, a random
        token), so no URL handed out before works after; the old objects go with the sweep that set_image's event
        brings. Nothing to do when the image already matches the recipe's visibility (safe to run twice)."""
        recipe = await RecipeRepository(session).get_for_update(recipe_id)
        if recipe is None or recipe.image_key is None or is_private_key(recipe.image_key) != recipe.is_public:
            return False
        private = not recipe.is_public
        moves = rekeyed(recipe.image_key, secrets.token_hex(8), private=private)
        cache_control = PRIVATE_CACHE_CONTROL if private else CACHE_CONTROL
        await asyncio.gather(
            *(
                self.storage.copy(old, new, content_type=CONTENT_TYPE, cache_control=cache_control)
                for old, new in moves.items()
            )
        )
        await self.recipes.set_image(session, recipe, moves[recipe.image_key])
        logger.info("media.rekeyed", extra={"recipe_id": str(recipe_id), "private": private})
        return True

    async def variant_url(
        self, session: ReadSession, recipe_id: uuid.UUID, user_id: uuid.UUID | None, variant: str
    ) -> str:
        """Where the caller may fetch a variant of the recipe's image: a short-lived signed URL while the recipe is
        private (404 unless the caller may see it), the public URL otherwise."""
        recipe = await RecipeRepository(session).get(recipe_id, frozenset())
        if recipe is None or not (recipe.is_public or recipe.author_id == user_id):
            raise NotFoundError("no such recipe")
        prefix = image_prefix(recipe.image_key) if recipe.image_key else None
        if prefix is None or variant not in VARIANTS:
            raise NotFoundError("no such image")
        key = f"{prefix}{variant}.{EXTENSION}"
        if is_private_key(key):
            return self.storage.signed_url(key, self.settings.signed_url_seconds)
        return public_url(self.recipes.media_base_url, key)

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.stop()  # type: ignore[no-untyped-call]  # kills an image still being processed; nothing waits for it any more
            await asyncio.to_thread(self._pool.join, 5)
            self._pool = None
        await self.storage.aclose()

    async def _check_author(self, recipe_id: uuid.UUID, user_id: uuid.UUID) -> None:
        cached = await self.recipes.get(recipe_id, user_id)  # 404 when missing or private to someone else
        if cached.meta.author_id != user_id:
            raise ForbiddenError("only the author may change this recipe")

    async def _lock(
        self, session: WriteSession, recipe_id: uuid.UUID, user_id: uuid.UUID, if_match: str | None
    ) -> Recipe:
        recipe = await self.recipes.lock_for_edit(session, recipe_id, user_id)
        if not if_match_satisfied(if_match, recipe.version):
            raise PreconditionFailedError(
                "the recipe changed since you read it; fetch it again", extra={"current_version": recipe.version}
            )
        return recipe

    async def _process(self, upload: bytes) -> ProcessedImage:
        self.check_size(len(upload))
        if self._admitted >= self._max_admitted:
            raise ServiceUnavailableError(
                "too many images are being processed; retry shortly", headers={"Retry-After": "2"}
            )
        self._admitted += 1
        try:
            async with self._processing:
                return await self._in_pool(upload)
        finally:
            self._admitted -= 1

    async def _in_pool(self, upload: bytes) -> ProcessedImage:
        """Decode, resize and encode in a process of the pool, within the time budget.

        Not on the API's CPU: a thread would still hold the GIL for much of Pillow's work and slow every request
        of the process. Past the budget pebble kills that process and starts another, so a costly image never
        holds a slot (or a request) for longer than the budget."""
        if self._pool is None:
            # forkserver: the children do not inherit this process's threads, loop and connections; Pillow is
            # imported once in the server, so a process replaced after a timeout is ready at once.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([process_image.__module__])
            self._pool = ProcessPool(
                max_workers=self.settings.processing_concurrency, initializer=warm_up, context=context
            )
        budget = self.settings.processing_timeout_seconds
        future = self._pool.schedule(
            process_image, args=(upload, self.limits, self.variants, self.settings.webp_quality), timeout=budget
        )
        try:
            return await asyncio.wrap_future(future)
        except ImageRejectedError:
            raise
        except FutureTimeoutError as exc:
            logger.warning("media.processing_timeout", extra={"budget_seconds": budget, "bytes": len(upload)})
            raise ImageTooSlowError(
                f"the image takes longer than {budget:g} s to process", extra={"budget_seconds": budget}
            ) from exc
        except ProcessExpired as exc:  # killed (out of memory, a decoder crash): the image is the likely cause
            logger.warning("media.processing_died", extra={"exitcode": exc.exitcode, "bytes": len(upload)})
            raise ServiceUnavailableError(
                "the image could not be processed; retry shortly", headers={"Retry-After": "2"}
            ) from exc

    def _read(self, recipe_id: uuid.UUID, version: int, image_key: str, processed: ProcessedImage) -> RecipeImageRead:
        urls = image_urls(self.recipes.media_base_url, image_key)
        assert urls is not None  # a key variant_keys made
        return RecipeImageRead(
            recipe_id=recipe_id,
            version=version,
            image_url=urls[DEFAULT_VARIANT],
            images=RecipeImages.model_validate(urls),
            variants=[
                VariantRead(name=v.name, width=v.width, height=v.height, bytes=len(v.data)) for v in processed.variants
            ],
        )
