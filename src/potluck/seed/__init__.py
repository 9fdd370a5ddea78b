"""Demo data: `potluck seed` fills an empty database with realistic, deterministic users, recipes and activity.

`generate` plans the data set and `rows` streams its rows (pure; `compose` and `recipe_text` write each recipe),
`loader` inserts them, `vocabulary` reads the word lists from the package data in `data/*.json`.
"""

# Every seeded user's password.
DEMO_PASSWORD = "potluck-demo"
