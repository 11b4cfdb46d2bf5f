"""Reading a feature's boundary (part of stage 1 of `cityops.boundary_import`): GeoJSON Polygon and
MultiPolygon coordinates into shapely geometries, then validity and the WGS 84 lon/lat range checked per file.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from cityops.boundary_problems import _Feature, _Problems

_FIX_GEOMETRY = ('repair it, e.g. with QGIS "Fix geometries" (Processing toolbox) or PostGIS '
                 "ST_MakeValid, then import again")


def _shape(kind: str, coordinates: object) -> BaseGeometry:
    """A 2-D Polygon or MultiPolygon from GeoJSON coordinates, built from numpy arrays (shapely.geometry.shape
    walks every vertex in Python, several times slower on city-sized files); altitudes are dropped."""
    if not isinstance(coordinates, list):
        raise ValueError("'coordinates' is not a list")
    if kind == "Polygon":
        return _polygon(coordinates)
    polygons = [_polygon(rings) for rings in coordinates]
    polygons = [polygon for polygon in polygons if not polygon.is_empty]
    return shapely.multipolygons(polygons) if polygons else MultiPolygon()


def _polygon(rings: object) -> Polygon:
    if not isinstance(rings, list):
        raise ValueError("a polygon's coordinates must be a list of rings")
    if not rings:
        return Polygon()
    arrays = []
    for ring in rings:
        try:
            array = np.asarray(ring, dtype=float)
        except (ValueError, TypeError):
            raise ValueError("positions must be [longitude, latitude] numbers, all of the same length") from None
        if array.ndim != 2 or array.shape[1] < 2:
            raise ValueError("a ring must be a list of [longitude, latitude] positions")
        if len(array) < 4:
            raise ValueError(f"a ring has {len(array)} positions; it needs at least 4 (the first repeated last)")
        arrays.append(array[:, :2])
    return shapely.polygons(arrays[0], holes=arrays[1:] or None)


def _check_geometries(name: str, features: list[_Feature], problems: _Problems) -> None:
    """Validity and coordinate range, vectorised over the file."""
    with_geometry = [f for f in features if f.geometry is not None]
    if not with_geometry:
        return
    geometries = np.array([f.geometry for f in with_geometry], dtype=object)
    valid = shapely.is_valid(geometries)
    for feature, ok in zip(with_geometry, valid):
        if not ok:
            problems.feature(feature, f"broken geometry: {explain_validity(feature.geometry)}; "
                                      f"{_FIX_GEOMETRY}")
            feature.flagged = True
            feature.geometry = None
    bounds = shapely.bounds(geometries)
    outside = (bounds[:, 0] < -180) | (bounds[:, 2] > 180) | (bounds[:, 1] < -90) | (bounds[:, 3] > 90)
    if outside.any():
        first = int(np.argmax(outside))
        feature = with_geometry[first]
        others = int(outside.sum()) - 1
        more = f" (and {others} more feature(s) of this file)" if others else ""
        x, y = bounds[first, 0], bounds[first, 1]
        problems.feature(feature, f"coordinates like ({x:.1f}, {y:.1f}) are not longitude/latitude{more}; "
                                  "re-project the file to WGS 84 (EPSG:4326), e.g. "
                                  "`ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson`")
        for index in np.flatnonzero(outside):
            with_geometry[index].flagged = True
            with_geometry[index].geometry = None
