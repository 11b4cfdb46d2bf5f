"""Cutting a unit into child cells for the demo city (step 3 of ``demo_city``): blue-noise seeds that
follow the settlement density, and Voronoi cells clipped to the parent, each kept in one piece.

Plain geometry in the kilometre plane: the cells know nothing of codes, names or levels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

if TYPE_CHECKING:
    from cityops.demo_city import Coordinates, DensityField


def _sample_seeds(
    region: BaseGeometry,
    count: int,
    density: DensityField,
    rng: np.random.Generator,
    density_exponent: float = 1.0,
) -> Coordinates:
    """``count`` seed points inside ``region``, denser where the density field is high.

    Candidates are drawn by rejection sampling against the density, and a candidate too close to an
    accepted seed (closer than a fraction of the spacing expected there) is skipped: this blue-noise
    spacing gives evenly sized, roundish cells instead of the slivers of pure random points. If the
    spacing proves too greedy, it relaxes until all seeds fit.
    """
    min_x, min_y, max_x, max_y = region.bounds
    shapely.prepare(region)

    def weight(points: Coordinates) -> np.ndarray:
        return density(points[:, 0], points[:, 1]) ** density_exponent

    def uniform_inside(size: int) -> Coordinates:
        points = np.column_stack([rng.uniform(min_x, max_x, size), rng.uniform(min_y, max_y, size)])
        return points[shapely.contains_xy(region, points[:, 0], points[:, 1])]

    probe = uniform_inside(512)
    while len(probe) < 16:  # a thin region: keep probing until the weight estimate means something
        probe = np.vstack([probe, uniform_inside(512)])
    probe_weight = weight(probe)
    max_weight = float(probe_weight.max()) * 1.1
    cell_area_at_unit_weight = region.area * float(probe_weight.mean()) / count

    seeds = np.empty((count, 2))
    radii = np.empty(count)
    accepted = 0
    spacing = 0.7
    while accepted < count:
        candidates = uniform_inside(max(64, 4 * count))
        candidate_weight = weight(candidates)
        keep = rng.random(len(candidates)) * max_weight < candidate_weight
        for point, point_weight in zip(candidates[keep], candidate_weight[keep]):
            radius = spacing * math.sqrt(cell_area_at_unit_weight / point_weight)
            if accepted:
                gaps = np.hypot(*(seeds[:accepted] - point).T) - 0.5 * (radii[:accepted] + radius)
                if gaps.min() < 0.0:
                    continue
            seeds[accepted], radii[accepted] = point, radius
            accepted += 1
            if accepted == count:
                break
        spacing *= 0.92
    return seeds


def _voronoi_cells(region: BaseGeometry, seeds: Coordinates) -> list[BaseGeometry]:
    """The Voronoi cells of ``seeds`` clipped to ``region``, in seed order, each one polygon where the
    region allows. The diagram is extended over the region's bounding box, so the clipped cells tile the
    region; neighbours share the diagram's exact vertices, so they do not overlap."""
    diagram = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=region, ordered=True)
    cells = shapely.get_parts(diagram)
    assert len(cells) == len(seeds), "the Voronoi diagram has one cell per distinct seed"
    clipped = shapely.intersection(cells, region)
    return _give_away_detached_pieces(list(clipped), shapely.points(seeds))


def _give_away_detached_pieces(
    cells: list[BaseGeometry], anchors: np.ndarray | None = None
) -> list[BaseGeometry]:
    """Make each cell one polygon by handing its detached pieces to neighbouring siblings.

    A convex Voronoi cell clipped by a concave parent (a bay, a bend of a border) can fall apart. The
    piece holding the cell's anchor (its seed; the largest piece without one) stays; every other piece
    joins the sibling it shares the longest border with. The union of all cells is unchanged, so the
    siblings still tile the parent. A piece touching no sibling (the parent itself is in pieces) stays.
    """
    kept: list[BaseGeometry] = []
    loose: list[tuple[int, BaseGeometry]] = []
    for index, cell in enumerate(cells):
        pieces = [p for p in shapely.get_parts(cell) if isinstance(p, Polygon) and not p.is_empty]
        if len(pieces) <= 1:
            kept.append(pieces[0] if pieces else cell)
            continue
        anchor = anchors[index] if anchors is not None else None
        main = _main_piece(pieces, anchor)
        kept.append(pieces[main])
        loose += [(index, piece) for number, piece in enumerate(pieces) if number != main]

    while loose:
        still_loose = []
        for owner, piece in loose:
            neighbour = _longest_shared_border(piece, kept, exclude=owner)
            if neighbour is None:
                still_loose.append((owner, piece))
            else:
                kept[neighbour] = shapely.union(kept[neighbour], piece)
        if len(still_loose) == len(loose):  # nobody to give them to: they stay with their own cell
            for owner, piece in still_loose:
                kept[owner] = shapely.union(kept[owner], piece)
            break
        loose = still_loose
    return kept


def _main_piece(pieces: list[Polygon], anchor: BaseGeometry | None) -> int:
    """Index of the piece that holds ``anchor``, or of the largest piece."""
    if anchor is not None:
        for index, piece in enumerate(pieces):
            if piece.intersects(anchor):
                return index
    return int(np.argmax([piece.area for piece in pieces]))


def _longest_shared_border(piece: Polygon, cells: list[BaseGeometry], exclude: int) -> int | None:
    """The cell (other than ``exclude``) sharing the longest stretch of border with ``piece``.

    The border is measured as the length of the piece's boundary lying within a hair of the cell,
    because separately clipped neighbours can disagree in the last bits of a coordinate.
    """
    hair = 1e-9 * math.sqrt(max(piece.area, 1e-300)) + 1e-12
    boundary = piece.boundary
    best, best_length = None, 0.0
    for index, cell in enumerate(cells):
        if index == exclude or not shapely.dwithin(cell, piece, hair):
            continue
        length = boundary.intersection(cell.buffer(hair * 10, quad_segs=1)).length
        if length > best_length:
            best, best_length = index, length
    return best
