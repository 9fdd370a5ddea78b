"""Scheduled backups: the app's only contact with pgBackRest is running its command (potluck_ops owns the rest)."""
