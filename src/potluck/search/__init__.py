"""Full-text recipe search (PostgreSQL tsvector + pg_trgm, or SQLite FTS5), cached by generation; search analytics."""
