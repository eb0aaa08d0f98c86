"""The inference engine: a scene of any size to a road mask and probability, as Cloud-Optimised GeoTIFFs.

- :mod:`~worker.inference.predict`: :func:`~worker.inference.predict.predict_scene`, streamed in strips;
- :mod:`~worker.inference.sliding_window`: the paper's stride-averaged windows;
- :mod:`~worker.inference.model`: the ONNX Runtime session, its providers and model variants;
- :mod:`~worker.inference.gpu`: IO binding and batch sizes on a GPU;
- :mod:`~worker.inference.cog`: the COG writer (the results, and the scene kept for map tiles);
- :mod:`~worker.inference.cli`: ``roadnet predict``.
"""
