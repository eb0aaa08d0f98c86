"""The job runner: one job from its uploaded scene to its published results, and the Celery glue.

- :mod:`~worker.runner.pipeline`: :func:`~worker.runner.pipeline.run_job`, inference, vectorisation and
  previews, idempotent;
- :mod:`~worker.runner.preview`: the PNG previews of the web map;
- :mod:`~worker.runner.tasks`: the Celery task, the worker's start-up (embedded requeue) and heartbeat;
- :mod:`~worker.runner.cli`: ``roadnet worker``.
"""
