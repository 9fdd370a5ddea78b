"""Database access: the declarative Base, engines, and primary/replica session routing."""
