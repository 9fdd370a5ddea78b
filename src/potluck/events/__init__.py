"""The transactional outbox: events recorded with the change that caused them, delivered after commit."""
