"""Celery worker entry points."""
