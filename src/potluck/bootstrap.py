"""Composition root: every engine, client and service is built here, once, from Settings."""

from __future__ import annotations

from dataclasses import dataclass

from potluck.config import Settings
from potluck.db.engine import Database
from potluck.recipe.service import RecipeService
from potluck.user.security import PasswordHasher, TokenService
from potluck.user.service import UserService


@dataclass
class Container:
    settings: Settings
    database: Database
    tokens: TokenService
    users: UserService
    recipes: RecipeService

    async def aclose(self) -> None:
        await self.database.dispose()


def bootstrap(settings: Settings) -> Container:
    database = Database.from_settings(settings.database_url, settings.database)
    tokens = TokenService.from_settings(settings.auth, settings.data_dir)
    hasher = PasswordHasher.from_settings(settings.auth)
    media_base = settings.media.public_base_url
    return Container(
        settings=settings,
        database=database,
        tokens=tokens,
        users=UserService(hasher, tokens, media_base),
        recipes=RecipeService(media_base),
    )
