"""Demo data: `potluck seed` fills an empty database with realistic, deterministic users, recipes and activity.

`generate` makes the rows (pure), `loader` inserts them, `vocabulary` holds the word lists.
"""

# Every seeded user's password.
DEMO_PASSWORD = "potluck-demo"
