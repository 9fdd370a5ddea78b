"""declared tastes on the user account (cuisines and tags liked, for cold-start recommendations)

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-05 19:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("user_account", sa.Column("tastes", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("user_account", "tastes")
