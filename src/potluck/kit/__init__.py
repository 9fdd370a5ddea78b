"""Domain-free helpers: ids, cursors, field selection."""
