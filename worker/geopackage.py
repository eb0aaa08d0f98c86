"""Road segments as an OGC GeoPackage (1.3), written with the standard library's sqlite3.

No GDAL/OGR binding is needed (rasterio's GDAL has no vector API): a GeoPackage is an SQLite file with
three metadata tables and a feature table whose geometries are "GP" blobs (a small header, then WKB).
QGIS, GDAL and ArcGIS open it as a layer ``roads``.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import shapely

TABLE = "roads"
_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
    'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",'
    '0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
    'AUTHORITY["EPSG","4326"]]'
)
_SCHEMA = f"""
CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
    organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL,
    description TEXT);
CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
    identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL,
    min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
    CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
    geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
    CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name));
CREATE TABLE {TABLE} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom LINESTRING,
    length_m REAL, start_node INTEGER, end_node INTEGER, confidence REAL);
"""


def _blob(coords: np.ndarray, srs_id: int) -> bytes:
    """A GeoPackage geometry: 'GP', version 0, flags (little endian, xy envelope), srs id, envelope, WKB."""
    min_x, min_y = coords.min(axis=0)
    max_x, max_y = coords.max(axis=0)
    header = b"GP" + struct.pack("<BBi4d", 0, 0b0000_0011, srs_id, min_x, max_x, min_y, max_y)
    return header + shapely.to_wkb(shapely.LineString(coords), byte_order=1)


def write_geopackage(features: Iterable[dict], out: Path, *, georeferenced: bool) -> tuple[int, float]:
    """Write GeoJSON-like LineString features into the layer ``roads`` of ``out`` (replaced atomically).

    Coordinates are WGS 84 lon/lat (EPSG:4326), or pixel coordinates in an undefined cartesian SRS
    (srs_id -1) when ``georeferenced`` is false. Returns the count and total ``length_m``.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.unlink(missing_ok=True)
    srs_id = 4326 if georeferenced else -1
    count, total = 0, 0.0
    bounds = np.array([np.inf, np.inf, -np.inf, -np.inf])
    db = sqlite3.connect(tmp)
    try:
        db.execute("PRAGMA application_id = 1196444487")  # "GPKG"
        db.execute("PRAGMA user_version = 10300")
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "pixel coordinates"),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
                ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84_WKT, "longitude/latitude"),
            ],
        )
        for feature in features:
            coords = np.asarray(feature["geometry"]["coordinates"], dtype=np.float64)
            props = feature["properties"]
            db.execute(
                f"INSERT INTO {TABLE} (geom, length_m, start_node, end_node, confidence) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    _blob(coords, srs_id),
                    props["length_m"],
                    props["start_node"],
                    props["end_node"],
                    props.get("confidence"),  # null without a probability raster
                ),
            )
            bounds = np.concatenate(
                [np.minimum(bounds[:2], coords.min(0)), np.maximum(bounds[2:], coords.max(0))]
            )
            count += 1
            total += props["length_m"] or 0.0
        extent = bounds.tolist() if count else [None] * 4
        db.execute(
            "INSERT INTO gpkg_contents VALUES (?, 'features', ?, 'road centrelines', ?, ?, ?, ?, ?, ?)",
            (TABLE, TABLE, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"), *extent, srs_id),
        )
        db.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'LINESTRING', ?, 0, 0)", (TABLE, srs_id)
        )
        db.commit()
    finally:
        db.close()
    os.replace(tmp, out)
    return count, total
