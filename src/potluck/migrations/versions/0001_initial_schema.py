"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 05:10:08.386311
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingredient",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingredient")),
    )
    op.create_index("idx_ingredients_name", "ingredient", ["name"], unique=True)

    op.create_table(
        "tag",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag")),
    )
    op.create_index("idx_tag_name", "tag", ["name"], unique=True)

    op.create_table(
        "user_account",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("bio", sa.Text(), nullable=False),
        sa.Column("avatar_image_key", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
    )
    op.create_index("uq_user_account_email_lower", "user_account", [sa.text("lower(email)")], unique=True)
    op.create_index("uq_user_account_username_lower", "user_account", [sa.text("lower(username)")], unique=True)
    op.create_table(
        "follow",
        sa.Column("follower_id", sa.Uuid(), nullable=False),
        sa.Column("followee_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("follower_id <> followee_id", name=op.f("ck_follow_not_self")),
        sa.ForeignKeyConstraint(
            ["followee_id"],
            ["user_account.id"],
            name=op.f("fk_follow_followee_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["follower_id"],
            ["user_account.id"],
            name=op.f("fk_follow_follower_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("follower_id", "followee_id", name=op.f("pk_follow")),
    )
    op.create_index("idx_follow_followee_created", "follow", ["followee_id", "created_at", "follower_id"], unique=False)
    op.create_index("idx_follow_follower_created", "follow", ["follower_id", "created_at", "followee_id"], unique=False)

    op.create_table(
        "recipe",
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("cuisine", sa.String(length=50), nullable=True),
        sa.Column("prep_minutes", sa.Integer(), nullable=False),
        sa.Column("cook_minutes", sa.Integer(), nullable=False),
        sa.Column("servings", sa.Integer(), nullable=False),
        sa.Column(
            "difficulty",
            sa.Enum("easy", "medium", "hard", name="difficulty", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("image_key", sa.String(length=255), nullable=True),
        sa.Column("rating_avg", sa.Float(), nullable=True),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("view_count", sa.Integer(), nullable=False),
        sa.Column("favorite_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("prep_minutes >= 0 AND cook_minutes >= 0", name=op.f("ck_recipe_minutes_non_negative")),
        sa.CheckConstraint("servings >= 1", name=op.f("ck_recipe_servings_positive")),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["user_account.id"],
            name=op.f("fk_recipe_author_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipe")),
    )
    op.create_index(
        "idx_recipes_author_created", "recipe", ["author_id", sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_index("idx_recipes_cuisine_rating", "recipe", ["cuisine", sa.text("rating_avg DESC")])
    op.create_index(
        "idx_recipes_public_created", "recipe", ["is_public", sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_table(
        "favorite",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipe_id"], ["recipe.id"], name=op.f("fk_favorite_recipe_id_recipe"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_favorite_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "recipe_id", name=op.f("pk_favorite")),
    )
    op.create_index("idx_favorite_recipe", "favorite", ["recipe_id"], unique=False)
    op.create_index("idx_favorite_user_created", "favorite", ["user_id", "created_at", "recipe_id"], unique=False)

    op.create_table(
        "nutrition",
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("calories", sa.Float(), nullable=True),
        sa.Column("protein_g", sa.Float(), nullable=True),
        sa.Column("fat_g", sa.Float(), nullable=True),
        sa.Column("carbohydrates_g", sa.Float(), nullable=True),
        sa.Column("fiber_g", sa.Float(), nullable=True),
        sa.Column("sugar_g", sa.Float(), nullable=True),
        sa.Column("sodium_mg", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipe_id"], ["recipe.id"], name=op.f("fk_nutrition_recipe_id_recipe"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("recipe_id", name=op.f("pk_nutrition")),
    )
    op.create_table(
        "rating",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("review", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("stars BETWEEN 1 AND 5", name=op.f("ck_rating_stars_range")),
        sa.ForeignKeyConstraint(
            ["recipe_id"], ["recipe.id"], name=op.f("fk_rating_recipe_id_recipe"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_rating_user_id_user_account"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "recipe_id", name=op.f("pk_rating")),
    )
    op.create_index("idx_rating_recipe_created", "rating", ["recipe_id", "created_at"], unique=False)

    op.create_table(
        "recipe_ingredient",
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("ingredient_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=30), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["ingredient_id"],
            ["ingredient.id"],
            name=op.f("fk_recipe_ingredient_ingredient_id_ingredient"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["recipe_id"],
            ["recipe.id"],
            name=op.f("fk_recipe_ingredient_recipe_id_recipe"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("recipe_id", "position", name=op.f("pk_recipe_ingredient")),
    )
    op.create_index("idx_recipe_ingredient_ingredient", "recipe_ingredient", ["ingredient_id"], unique=False)
    op.create_index("idx_recipe_ingredients", "recipe_ingredient", ["recipe_id", "ingredient_id"], unique=False)

    op.create_table(
        "recipe_tag",
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("tag_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipe_id"], ["recipe.id"], name=op.f("fk_recipe_tag_recipe_id_recipe"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["tag_id"], ["tag.id"], name=op.f("fk_recipe_tag_tag_id_tag"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("recipe_id", "tag_id", name=op.f("pk_recipe_tag")),
    )
    op.create_index("idx_recipe_tag_tag", "recipe_tag", ["tag_id", "recipe_id"], unique=False)

    op.create_table(
        "step",
        sa.Column("recipe_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipe_id"], ["recipe.id"], name=op.f("fk_step_recipe_id_recipe"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("recipe_id", "position", name=op.f("pk_step")),
    )


def downgrade() -> None:
    op.drop_table("step")
    op.drop_index("idx_recipe_tag_tag", table_name="recipe_tag")

    op.drop_table("recipe_tag")
    op.drop_index("idx_recipe_ingredients", table_name="recipe_ingredient")
    op.drop_index("idx_recipe_ingredient_ingredient", table_name="recipe_ingredient")

    op.drop_table("recipe_ingredient")
    op.drop_index("idx_rating_recipe_created", table_name="rating")

    op.drop_table("rating")
    op.drop_table("nutrition")
    op.drop_index("idx_favorite_user_created", table_name="favorite")
    op.drop_index("idx_favorite_recipe", table_name="favorite")

    op.drop_table("favorite")
    op.drop_index("idx_recipes_public_created", table_name="recipe")
    op.drop_index("idx_recipes_cuisine_rating", table_name="recipe")
    op.drop_index("idx_recipes_author_created", table_name="recipe")
    op.drop_table("recipe")
    op.drop_index("idx_follow_follower_created", table_name="follow")
    op.drop_index("idx_follow_followee_created", table_name="follow")

    op.drop_table("follow")
    op.drop_index("uq_user_account_username_lower", table_name="user_account")
    op.drop_index("uq_user_account_email_lower", table_name="user_account")
    op.drop_table("user_account")
    op.drop_index("idx_tag_name", table_name="tag")

    op.drop_table("tag")
    op.drop_index("idx_ingredients_name", table_name="ingredient")

    op.drop_table("ingredient")
