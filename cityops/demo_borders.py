"""Finishing the demo city's borders (steps 4 and 5 of ``demo_city``): a gentle warp of the kilometre
plane bends the straight Voronoi edges, a local projection puts the city at Shanghai's coordinates, and
snap rounding to 6 decimals turns the communities into one planar coverage that higher levels are exact
unions of.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import shapely

from cityops.demo_cells import _give_away_detached_pieces

if TYPE_CHECKING:
    from cityops.demo_city import _Draft

CENTRE_LON = 121.45
CENTRE_LAT = 31.2
KM_PER_DEGREE_LAT = 110.574
KM_PER_DEGREE_LON = 111.320 * math.cos(math.radians(CENTRE_LAT))
COORDINATE_GRID_DEGREES = 1e-6  # 6 decimals
NODING_GRID_KM = 1e-7  # 0.1 mm: merges separately clipped copies of one border

# Borders bend with waves of these lengths; the slopes of all waves together stay below 1 (see _smooth_warp).
WARP_WAVELENGTHS_KM = (18.0, 6.0, 2.0, 0.7)
WARP_WAVES_PER_OCTAVE = 3
WARP_MAX_SLOPE = 0.9
WARP_VERTEX_SPACING_KM = 0.1


# ----------------------------------------------------------------------------------------------------
# Projection and coordinate rounding
# ----------------------------------------------------------------------------------------------------


def _smooth_warp(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A gentle random bending of the plane, so borders meander like rivers and roads instead of running
    as the dead-straight edges of a Voronoi diagram.

    The displacement is a sum of sine waves over several wavelengths. Each wave's amplitude is chosen so
    that the slopes add up to less than ``WARP_MAX_SLOPE`` < 1 even if all waves lined up: the map
    x ↦ x + d(x) is then one-to-one (|d(x) − d(y)| < |x − y|), so bent borders never cross and the
    tiling survives. Applied to shared vertices it moves them identically on both sides of a border.
    """
    wave_vectors, displacements, phases = [], [], []
    slope_per_octave = WARP_MAX_SLOPE / len(WARP_WAVELENGTHS_KM)
    for wavelength in WARP_WAVELENGTHS_KM:
        wavenumber = 2.0 * math.pi / wavelength
        amplitude = slope_per_octave / (WARP_WAVES_PER_OCTAVE * wavenumber)
        for _ in range(WARP_WAVES_PER_OCTAVE):
            heading, push = rng.uniform(0.0, 2.0 * math.pi, 2)
            wave_vectors.append((wavenumber * math.cos(heading), wavenumber * math.sin(heading)))
            displacements.append((amplitude * math.cos(push), amplitude * math.sin(push)))
            phases.append(rng.uniform(0.0, 2.0 * math.pi))
    wave_array, displacement_array, phase_array = np.array(wave_vectors), np.array(displacements), np.array(phases)

    def warp(points: np.ndarray) -> np.ndarray:
        waves = np.sin(points @ wave_array.T + phase_array)
        return points + waves @ displacement_array

    return warp


def _km_to_lonlat(points: np.ndarray) -> np.ndarray:
    """Local equirectangular projection back to WGS84; accurate to metres over a city."""
    return np.column_stack([
        CENTRE_LON + points[:, 0] / KM_PER_DEGREE_LON,
        CENTRE_LAT + points[:, 1] / KM_PER_DEGREE_LAT,
    ])


def _finish_geometry(
    city: _Draft,
    districts: list[_Draft],
    streets: list[_Draft],
    communities: list[_Draft],
    warp: Callable[[np.ndarray], np.ndarray],
) -> None:
    """Bend, project to lon/lat and round to 6 decimals as one coverage (``demo_city`` docstring, step 5).

    Every geometry is replaced: communities by unions of faces of the snap-rounded arrangement of all
    community borders, higher levels by exact unions of their children.
    """
    flat = np.array([c.geometry for c in communities], dtype=object)
    faces = _snap_rounded_faces(_bend(_shared_borders(flat), warp))
    owners = _face_owners(faces, _bend(flat, warp))
    for index, community in enumerate(communities):
        community.geometry = shapely.coverage_union_all(faces[owners == index])
    for street in streets:
        members = _give_away_detached_pieces([child.geometry for child in street.children])
        for community, geometry in zip(street.children, members):
            community.geometry = geometry
    for parent in [*streets, *districts, city]:
        parent.geometry = shapely.coverage_union_all([child.geometry for child in parent.children])


def _shared_borders(polygons: np.ndarray) -> np.ndarray:
    """All polygon borders as noded lines, each stretch of border once.

    Where a street border meets communities on both sides, their vertices along it differ (each side was
    clipped separately); noding on a fine grid merges the two versions into one line with all the
    vertices, so bending it later cannot open a gap between the two sides.
    """
    borders = shapely.get_parts(shapely.boundary(polygons))
    return shapely.get_parts(shapely.union_all(borders, grid_size=NODING_GRID_KM))


def _bend(geometries: np.ndarray, warp: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Add vertices along long edges (so they can curve), warp them and project to lon/lat."""
    detailed = shapely.segmentize(geometries, WARP_VERTEX_SPACING_KM)
    return shapely.transform(detailed, lambda points: _km_to_lonlat(warp(points)))


def _snap_rounded_faces(lines: np.ndarray) -> np.ndarray:
    """The faces of the arrangement of ``lines``, noded and snap-rounded onto the 1e-6° grid.

    Snap rounding moves every vertex and crossing to its grid point and bends any line passing through
    that grid cell to it, so both sides of a border end up with the same vertices.
    """
    noded = shapely.union_all(lines, grid_size=COORDINATE_GRID_DEGREES)
    return shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))


def _face_owners(faces: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """For each face, the index of the polygon it belongs to.

    Rounding moved borders by less than 1e-6°, so a point well inside a face lies in exactly one polygon,
    its owner. Only the odd sliver whose inner point falls in none or several is settled by the costlier
    rule that defines ownership: the largest overlap.
    """
    tree = shapely.STRtree(polygons)
    face_index, polygon_index = tree.query(shapely.point_on_surface(faces), predicate="within")
    hits = np.bincount(face_index, minlength=len(faces))
    owners = np.full(len(faces), -1)
    unambiguous = hits[face_index] == 1
    owners[face_index[unambiguous]] = polygon_index[unambiguous]
    for face in np.flatnonzero(hits != 1):
        candidates = tree.query(faces[face], predicate="intersects")
        if len(candidates):
            overlaps = shapely.area(shapely.intersection(faces[face], polygons[candidates]))
            owners[face] = candidates[int(np.argmax(overlaps))]
    if (owners < 0).any():
        raise RuntimeError("a face of the rounded city overlaps no community: rounding went wrong")
    return owners
