"""Recipe statistics: views counted without a database write per view."""
