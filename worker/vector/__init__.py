"""The vector pipeline: a road mask to a road network (GeoJSON, or GeoPackage), and its APLS score.

- :mod:`~worker.vector.vectorize`: :func:`~worker.vector.vectorize.vectorize_mask`, mask to road lines
  block by block, and the GeoJSON writer;
- :mod:`~worker.vector.options`: :class:`~worker.vector.options.VectorizeOptions`, its lengths in metres;
- :mod:`~worker.vector.graph_trace` and :mod:`~worker.vector.graph_clean`: the skeleton's graph and its
  clean-up (spurs, fragments, gaps);
- :mod:`~worker.vector.confidence`: each road's mean probability;
- :mod:`~worker.vector.geopackage`: the GeoPackage writer;
- :mod:`~worker.vector.apls`: SpaceNet 3's APLS metric, and the GeoJSON line reader;
- :mod:`~worker.vector.cli`: ``roadnet vectorize`` and ``roadnet score-graph``.
"""
