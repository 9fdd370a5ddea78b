"""What several test modules share: waiting for a condition, the app behind a test client, outbox and e2e helpers.

Test modules import from here (or use conftest fixtures), never from one another.
"""
