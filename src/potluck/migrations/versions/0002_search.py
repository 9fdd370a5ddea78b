"""full-text search and trending indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 06:00:00.000000

PostgreSQL: `recipe.search_vector` (title A, description B, ingredient names C; english stemming, accents
folded) kept current by triggers on recipe, recipe_ingredient and ingredient; GIN `idx_recipes_search` on it;
a trigram GIN index on the folded, lower-cased title for the typo fallback.

SQLite: `recipe_search_doc` (one row per recipe: its title, description and ingredient names, under a stable
integer key) kept current by triggers, and the FTS5 index `recipe_fts` over it as external content. A recipe's
own rowid is not a safe FTS key: without an INTEGER PRIMARY KEY, VACUUM may renumber it.

Both: indexes on favorite.created_at and rating.created_at, which trending's time windows read.
See docs/search.md.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()
    op.create_index("idx_favorite_created", "favorite", ["created_at"])
    op.create_index("idx_rating_created", "rating", ["created_at"])


def downgrade() -> None:
    op.drop_index("idx_rating_created", table_name="rating")
    op.drop_index("idx_favorite_created", table_name="favorite")
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgresql()
    else:
        _downgrade_sqlite()


# --- PostgreSQL -------------------------------------------------------------------------------------------


def _unaccent_schema() -> str:
    row = op.get_bind().exec_driver_sql(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'unaccent'"
    )
    schema: str = row.scalar_one()
    return schema


_PG_FUNCTIONS = """
-- unaccent() is STABLE (its dictionary could change); indexes and the search column need IMMUTABLE. The
-- dictionary is named explicitly and schema-qualified so the function behaves the same under any search_path
-- (autovacuum and pg_restore evaluate index expressions with an empty one).
CREATE FUNCTION potluck_unaccent(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT {schema}.unaccent('{schema}.unaccent'::regdictionary, $1) $$;

CREATE FUNCTION recipe_search_document(p_title text, p_description text, p_ingredients text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT setweight(to_tsvector('english'::regconfig, potluck_unaccent(coalesce(p_title, ''))), 'A')
        || setweight(to_tsvector('english'::regconfig, potluck_unaccent(coalesce(p_description, ''))), 'B')
        || setweight(to_tsvector('english'::regconfig, potluck_unaccent(coalesce(p_ingredients, ''))), 'C')
$$;

CREATE FUNCTION recipe_ingredient_names(p_recipe_id uuid) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(string_agg(i.name, ' ' ORDER BY ri.position), '')
    FROM recipe_ingredient ri JOIN ingredient i ON i.id = ri.ingredient_id
    WHERE ri.recipe_id = p_recipe_id
$$;

-- Recompute one recipe's vector from its current rows (also callable by hand after a bulk change).
CREATE FUNCTION recipe_search_refresh(p_recipe_id uuid) RETURNS void
LANGUAGE sql
AS $$
    UPDATE recipe
    SET search_vector = recipe_search_document(title, description, recipe_ingredient_names(id))
    WHERE id = p_recipe_id
$$;

-- On the recipe row itself: computed in place (BEFORE), so an insert or a title edit costs no second row version.
-- A new row has no ingredient lines yet (their foreign key needs the recipe first).
CREATE FUNCTION recipe_search_before_write() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.search_vector := recipe_search_document(NEW.title, NEW.description, '');
    ELSE
        NEW.search_vector := recipe_search_document(NEW.title, NEW.description, recipe_ingredient_names(NEW.id));
    END IF;
    RETURN NEW;
END
$$;

-- Ingredient lines change in bulk (a recipe's list is replaced as a whole): one set-based UPDATE per statement.
CREATE FUNCTION recipe_ingredient_search_refresh() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE recipe r
        SET search_vector = recipe_search_document(r.title, r.description, recipe_ingredient_names(r.id))
        WHERE r.id IN (SELECT recipe_id FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE recipe r
        SET search_vector = recipe_search_document(r.title, r.description, recipe_ingredient_names(r.id))
        WHERE r.id IN (SELECT recipe_id FROM old_rows);
    ELSE
        UPDATE recipe r
        SET search_vector = recipe_search_document(r.title, r.description, recipe_ingredient_names(r.id))
        WHERE r.id IN (SELECT recipe_id FROM new_rows UNION SELECT recipe_id FROM old_rows);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION ingredient_search_refresh() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE recipe r
    SET search_vector = recipe_search_document(r.title, r.description, recipe_ingredient_names(r.id))
    WHERE r.id IN (SELECT recipe_id FROM recipe_ingredient WHERE ingredient_id = NEW.id);
    RETURN NULL;
END
$$;
"""

_PG_TRIGGERS = """
CREATE TRIGGER recipe_search_before_write
BEFORE INSERT OR UPDATE OF title, description ON recipe
FOR EACH ROW EXECUTE FUNCTION recipe_search_before_write();

CREATE TRIGGER recipe_ingredient_search_insert
AFTER INSERT ON recipe_ingredient REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION recipe_ingredient_search_refresh();

CREATE TRIGGER recipe_ingredient_search_delete
AFTER DELETE ON recipe_ingredient REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION recipe_ingredient_search_refresh();

CREATE TRIGGER recipe_ingredient_search_update
AFTER UPDATE ON recipe_ingredient REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION recipe_ingredient_search_refresh();

CREATE TRIGGER ingredient_search_rename
AFTER UPDATE OF name ON ingredient
FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION ingredient_search_refresh();
"""


def _upgrade_postgresql() -> None:
    # The backfill rewrites every recipe row: longer than an app connection's statement_timeout on a big table.
    op.execute("SET LOCAL statement_timeout = 0")
    # Both ship with PostgreSQL's contrib and are "trusted" (PostgreSQL 13+): a database owner may create them.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    schema = _unaccent_schema()
    op.execute("ALTER TABLE recipe ADD COLUMN search_vector tsvector")
    for statement in _statements(_PG_FUNCTIONS.format(schema=f'"{schema}"')):
        op.execute(statement)
    # Backfill before the triggers exist: one pass, no trigger work per row.
    op.execute(
        "UPDATE recipe SET search_vector = recipe_search_document(title, description, recipe_ingredient_names(id))"
    )
    for statement in _statements(_PG_TRIGGERS):
        op.execute(statement)
    op.execute("CREATE INDEX idx_recipes_search ON recipe USING GIN (search_vector)")
    op.execute("CREATE INDEX idx_recipes_title_trgm ON recipe USING GIN (potluck_unaccent(lower(title)) gin_trgm_ops)")


def _downgrade_postgresql() -> None:
    op.execute("DROP INDEX IF EXISTS idx_recipes_title_trgm")
    op.execute("DROP INDEX IF EXISTS idx_recipes_search")
    op.execute("DROP TRIGGER IF EXISTS ingredient_search_rename ON ingredient")
    for name in ("update", "delete", "insert"):
        op.execute(f"DROP TRIGGER IF EXISTS recipe_ingredient_search_{name} ON recipe_ingredient")
    op.execute("DROP TRIGGER IF EXISTS recipe_search_before_write ON recipe")
    for signature in (
        "ingredient_search_refresh()",
        "recipe_ingredient_search_refresh()",
        "recipe_search_before_write()",
        "recipe_search_refresh(uuid)",
        "recipe_ingredient_names(uuid)",
        "recipe_search_document(text, text, text)",
        "potluck_unaccent(text)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.execute("ALTER TABLE recipe DROP COLUMN IF EXISTS search_vector")
    # Without CASCADE: if anything else has come to use them since, the downgrade stops and says so.
    op.execute("DROP EXTENSION IF EXISTS unaccent")
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")


# --- SQLite -----------------------------------------------------------------------------------------------

_SQLITE_NAMES = """coalesce((
        SELECT group_concat(i.name, ' ') FROM recipe_ingredient ri JOIN ingredient i ON i.id = ri.ingredient_id
        WHERE ri.recipe_id = {recipe_id}
    ), '')"""

_SQLITE_TABLES = """
CREATE TABLE recipe_search_doc (
    doc_id INTEGER PRIMARY KEY,
    recipe_id CHAR(32) NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    ingredients TEXT NOT NULL
);

CREATE VIRTUAL TABLE recipe_fts USING fts5(
    title, description, ingredients,
    content='recipe_search_doc', content_rowid='doc_id',
    tokenize='porter unicode61 remove_diacritics 2'
);
"""

_SQLITE_TRIGGERS = f"""
CREATE TRIGGER recipe_search_insert AFTER INSERT ON recipe BEGIN
    INSERT INTO recipe_search_doc (recipe_id, title, description, ingredients)
    VALUES (NEW.id, NEW.title, NEW.description, {_SQLITE_NAMES.format(recipe_id="NEW.id")});
END;

CREATE TRIGGER recipe_search_update AFTER UPDATE OF title, description ON recipe BEGIN
    UPDATE recipe_search_doc SET title = NEW.title, description = NEW.description WHERE recipe_id = NEW.id;
END;

CREATE TRIGGER recipe_search_delete AFTER DELETE ON recipe BEGIN
    DELETE FROM recipe_search_doc WHERE recipe_id = OLD.id;
END;

CREATE TRIGGER recipe_ingredient_search_insert AFTER INSERT ON recipe_ingredient BEGIN
    UPDATE recipe_search_doc SET ingredients = {_SQLITE_NAMES.format(recipe_id="NEW.recipe_id")}
    WHERE recipe_id = NEW.recipe_id;
END;

CREATE TRIGGER recipe_ingredient_search_delete AFTER DELETE ON recipe_ingredient BEGIN
    UPDATE recipe_search_doc SET ingredients = {_SQLITE_NAMES.format(recipe_id="OLD.recipe_id")}
    WHERE recipe_id = OLD.recipe_id;
END;

CREATE TRIGGER recipe_ingredient_search_update AFTER UPDATE OF recipe_id, ingredient_id ON recipe_ingredient BEGIN
    UPDATE recipe_search_doc SET ingredients = {_SQLITE_NAMES.format(recipe_id="recipe_search_doc.recipe_id")}
    WHERE recipe_id IN (OLD.recipe_id, NEW.recipe_id);
END;

CREATE TRIGGER ingredient_search_rename AFTER UPDATE OF name ON ingredient WHEN OLD.name IS NOT NEW.name BEGIN
    UPDATE recipe_search_doc SET ingredients = {_SQLITE_NAMES.format(recipe_id="recipe_search_doc.recipe_id")}
    WHERE recipe_id IN (SELECT recipe_id FROM recipe_ingredient WHERE ingredient_id = NEW.id);
END;

-- External content: FTS5 stores only the index; these keep it equal to recipe_search_doc. A 'delete' must
-- repeat exactly the values that were indexed, which the OLD row has.
CREATE TRIGGER recipe_search_doc_insert AFTER INSERT ON recipe_search_doc BEGIN
    INSERT INTO recipe_fts (rowid, title, description, ingredients)
    VALUES (NEW.doc_id, NEW.title, NEW.description, NEW.ingredients);
END;

CREATE TRIGGER recipe_search_doc_delete AFTER DELETE ON recipe_search_doc BEGIN
    INSERT INTO recipe_fts (recipe_fts, rowid, title, description, ingredients)
    VALUES ('delete', OLD.doc_id, OLD.title, OLD.description, OLD.ingredients);
END;

CREATE TRIGGER recipe_search_doc_update AFTER UPDATE ON recipe_search_doc
WHEN OLD.title IS NOT NEW.title OR OLD.description IS NOT NEW.description OR OLD.ingredients IS NOT NEW.ingredients
BEGIN
    INSERT INTO recipe_fts (recipe_fts, rowid, title, description, ingredients)
    VALUES ('delete', OLD.doc_id, OLD.title, OLD.description, OLD.ingredients);
    INSERT INTO recipe_fts (rowid, title, description, ingredients)
    VALUES (NEW.doc_id, NEW.title, NEW.description, NEW.ingredients);
END;
"""

_SQLITE_TRIGGER_NAMES = (
    "recipe_search_doc_update",
    "recipe_search_doc_delete",
    "recipe_search_doc_insert",
    "ingredient_search_rename",
    "recipe_ingredient_search_update",
    "recipe_ingredient_search_delete",
    "recipe_ingredient_search_insert",
    "recipe_search_delete",
    "recipe_search_update",
    "recipe_search_insert",
)


def _upgrade_sqlite() -> None:
    for statement in _statements(_SQLITE_TABLES):
        op.execute(statement)
    op.execute(
        "INSERT INTO recipe_search_doc (recipe_id, title, description, ingredients) "
        f"SELECT r.id, r.title, r.description, {_SQLITE_NAMES.format(recipe_id='r.id')} FROM recipe r"
    )
    op.execute("INSERT INTO recipe_fts (recipe_fts) VALUES ('rebuild')")
    for statement in _trigger_statements(_SQLITE_TRIGGERS):
        op.execute(statement)


def _downgrade_sqlite() -> None:
    for name in _SQLITE_TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS recipe_fts")
    op.execute("DROP TABLE IF EXISTS recipe_search_doc")


# --- splitting scripts into statements ---------------------------------------------------------------------


def _statements(script: str) -> list[str]:
    """Statements separated by a blank line (function bodies contain semicolons; no blank lines inside them)."""
    return [part.strip() for part in script.split("\n\n") if part.strip() and not _is_comment(part)]


def _trigger_statements(script: str) -> list[str]:
    """SQLite triggers end with `END;` (their bodies contain semicolons)."""
    parts = [p.strip() for p in script.split("END;")]
    return [_strip_comments(p) + "\nEND" for p in parts if _strip_comments(p)]


def _is_comment(part: str) -> bool:
    return all(line.strip().startswith("--") or not line.strip() for line in part.splitlines())


def _strip_comments(part: str) -> str:
    return "\n".join(line for line in part.splitlines() if not line.strip().startswith("--")).strip()
