"""The FastAPI service: uploads, asynchronous jobs, results."""
