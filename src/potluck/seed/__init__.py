"""Demo data: `potluck seed` fills an empty database with realistic, deterministic users, recipes and activity."""
