"""Inference and vectorisation engines, and the Celery worker that runs them on uploaded scenes."""
