"""Disaster-recovery drills: each a module with one `run_*` function returning a flat result, and a subcommand
of `potluck drill` (drills/cli.py) that prints it as one table row and writes it as JSON."""
