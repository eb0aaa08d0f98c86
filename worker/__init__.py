"""The worker: runs jobs from the queue. Three subsystems, each with its own command:

- :mod:`worker.inference`: the engine, a scene to road mask and probability (``roadnet predict``);
- :mod:`worker.vector`: the vector pipeline, a road mask to a road network, and its APLS score
  (``roadnet vectorize``, ``roadnet score-graph``);
- :mod:`worker.runner`: one job end to end, and the Celery task and worker process that run it
  (``roadnet worker``).

What the worker shares with the service (the job store, the queue, scene checks, the model's files)
is in the core, :mod:`roadnet`; the worker never imports the service.
"""
