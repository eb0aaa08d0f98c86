"""Road segments as an OGC GeoPackage layer ``roads``, written by GDAL through pyogrio.

GDAL's GPKG driver writes the metadata tables, the spatial index and the geometry blobs the standard
asks for (GDAL's own ``validate_gpkg.py`` passes them); QGIS, GDAL and ArcGIS open the file as a layer
``roads``. pyogrio is an optional extra (``pip install 'roadnet[gpkg]'``): GeoJSON, the default output,
needs no GDAL vector binding.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import shapely

from roadnet.errors import MissingDependencyError

TABLE = "roads"


def write_geopackage(features: Iterable[dict], out: Path, *, georeferenced: bool) -> tuple[int, float]:
    """Write GeoJSON-like LineString features into the layer ``roads`` of ``out`` (replaced atomically).

    Coordinates are WGS 84 lon/lat (EPSG:4326), or pixel coordinates with no CRS when ``georeferenced``
    is false. A property that is None (``length_m`` without a CRS, ``confidence`` without a probability
    raster) is NULL. Returns the count and total ``length_m``. Raises :class:`MissingDependencyError`
    naming the extra when pyogrio is not installed.
    """
    try:
        from pyogrio.raw import write
    except ImportError as error:
        raise MissingDependencyError("pyogrio", "gpkg") from error
    features = list(features)
    props = [feature["properties"] for feature in features]
    lines = [shapely.LineString(feature["geometry"]["coordinates"]) for feature in features]

    def column(name: str, dtype: type) -> np.ndarray:
        # None (length_m without a CRS, confidence without a probability raster) goes in as NaN, which
        # pyogrio writes as NULL
        return np.array([np.nan if p.get(name) is None else p[name] for p in props], dtype=dtype)

    fields = ["length_m", "start_node", "end_node", "confidence"]
    dtypes = [np.float64, np.int64, np.int64, np.float64]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".part" + out.suffix)  # GDAL wants the .gpkg extension
    tmp.unlink(missing_ok=True)
    with warnings.catch_warnings():
        # Pixel coordinates have no CRS on purpose; GDAL records them in its undefined cartesian SRS.
        warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
        write(
            tmp,
            shapely.to_wkb(np.array(lines, dtype=object)),
            [column(name, dtype) for name, dtype in zip(fields, dtypes, strict=True)],
            fields,
            layer=TABLE,
            driver="GPKG",
            geometry_type="LineString",
            crs="EPSG:4326" if georeferenced else None,
            layer_options={"IDENTIFIER": TABLE, "DESCRIPTION": "road centrelines"},
        )
    os.replace(tmp, out)
    return len(features), sum(p["length_m"] or 0.0 for p in props)
