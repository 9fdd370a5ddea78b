from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Enum, Float, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from potluck.db.base import Base, CreatedAtMixin, IdMixin, utcnow
from potluck.user.models import User


class Difficulty(enum.StrEnum):
    easy = "easy"
    medium = "medium"
    hard = "hard"


class Recipe(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "recipe"
    __table_args__ = (
        # The design's indexes, named as the design names them.
        Index("idx_recipes_author_created", "author_id", text("created_at DESC"), text("id DESC")),
        Index("idx_recipes_cuisine_rating", "cuisine", text("rating_avg DESC")),
        # Keyset pagination of the public feed: newest first.
        Index("idx_recipes_public_created", "is_public", text("created_at DESC"), text("id DESC")),
        CheckConstraint("prep_minutes >= 0 AND cook_minutes >= 0", name="minutes_non_negative"),
        CheckConstraint("servings >= 1", name="servings_positive"),
    )

    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    cuisine: Mapped[str | None] = mapped_column(String(50))
    prep_minutes: Mapped[int] = mapped_column(default=0)
    cook_minutes: Mapped[int] = mapped_column(default=0)
    servings: Mapped[int] = mapped_column(default=1)
    difficulty: Mapped[Difficulty] = mapped_column(
        Enum(Difficulty, native_enum=False, length=10, validate_strings=True), default=Difficulty.medium
    )
    is_public: Mapped[bool] = mapped_column(default=True)
    image_key: Mapped[str | None] = mapped_column(String(255))
    rating_avg: Mapped[float | None] = mapped_column(Float)
    rating_count: Mapped[int] = mapped_column(default=0)
    view_count: Mapped[int] = mapped_column(default=0)
    favorite_count: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    author: Mapped[User] = relationship(lazy="raise")
    ingredients: Mapped[list[RecipeIngredient]] = relationship(
        lazy="raise", order_by="RecipeIngredient.position", cascade="all, delete-orphan"
    )
    steps: Mapped[list[Step]] = relationship(lazy="raise", order_by="Step.position", cascade="all, delete-orphan")
    tags: Mapped[list[Tag]] = relationship(secondary="recipe_tag", lazy="raise", order_by="Tag.name")
    nutrition: Mapped[Nutrition | None] = relationship(lazy="raise", cascade="all, delete-orphan")

    @property
    def total_minutes(self) -> int:
        return self.prep_minutes + self.cook_minutes


class Ingredient(IdMixin, Base):
    __tablename__ = "ingredient"
    __table_args__ = (Index("idx_ingredients_name", "name", unique=True),)

    name: Mapped[str] = mapped_column(String(100))


class RecipeIngredient(Base):
    __tablename__ = "recipe_ingredient"
    __table_args__ = (
        Index("idx_recipe_ingredients", "recipe_id", "ingredient_id"),
        Index("idx_recipe_ingredient_ingredient", "ingredient_id"),
    )

    recipe_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipe.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    ingredient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ingredient.id", ondelete="RESTRICT"))
    quantity: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(String(200))

    ingredient: Mapped[Ingredient] = relationship(lazy="raise")


class Step(Base):
    __tablename__ = "step"

    recipe_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipe.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class Tag(IdMixin, Base):
    __tablename__ = "tag"
    __table_args__ = (Index("idx_tag_name", "name", unique=True),)

    name: Mapped[str] = mapped_column(String(40))


class RecipeTag(Base):
    __tablename__ = "recipe_tag"
    __table_args__ = (Index("idx_recipe_tag_tag", "tag_id", "recipe_id"),)

    recipe_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipe.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True)


class Nutrition(Base):
    __tablename__ = "nutrition"

    recipe_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipe.id", ondelete="CASCADE"), primary_key=True)
    calories: Mapped[float | None] = mapped_column(Float)
    protein_g: Mapped[float | None] = mapped_column(Float)
    fat_g: Mapped[float | None] = mapped_column(Float)
    carbohydrates_g: Mapped[float | None] = mapped_column(Float)
    fiber_g: Mapped[float | None] = mapped_column(Float)
    sugar_g: Mapped[float | None] = mapped_column(Float)
    sodium_mg: Mapped[float | None] = mapped_column(Float)


class Rating(Base):
    __tablename__ = "rating"
    __table_args__ = (
        CheckConstraint("stars BETWEEN 1 AND 5", name="stars_range"),
        Index("idx_rating_recipe_created", "recipe_id", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    recipe_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipe.id", ondelete="CASCADE"), primary_key=True)
    stars: Mapped[int]
    review: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Favorite(Base):
    __tablename__ = "favorite"
    __table_args__ = (
        Index("idx_favorite_user_created", "user_id", "created_at", "recipe_id"),
        Index("idx_favorite_recipe", "recipe_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    recipe_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipe.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
