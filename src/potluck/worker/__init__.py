"""Celery: the worker that runs the relay and the scheduled jobs, and beat, which schedules them."""
