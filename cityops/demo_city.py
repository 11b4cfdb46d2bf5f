"""Haicheng (海城市): a deterministic fictional city at Shanghai's scale, the demo data set.

The demo must look like a real megacity on the map without being one: a coastline-like outline about
100 km × 80 km around Shanghai's coordinates, 16 districts, about 210 streets/towns and about 6,000
communities/villages, with small dense units in the core and large sparse ones in the periphery.

How it is built, top down:

1. The city outline is a smoothed noisy radial polygon. Being star-shaped around its centre, it cannot
   self-intersect.
2. A settlement-density field (a dense core plus a few satellite towns) drives everything uneven:
   where seeds fall, how many children a unit gets and how many people live in a community.
3. Each level is the Voronoi diagram of seeds sampled inside the parent, clipped to the parent. A cell
   that a concave parent cuts into pieces keeps the piece holding its seed; the other pieces go to the
   sibling they share the longest border with, so every unit stays one polygon.
4. Geometry is built in a local kilometre plane (so cells are not stretched by the longitude scale).
   At the end a gentle one-to-one warp of the plane bends the straight Voronoi edges into meandering
   borders, and the result is projected to lon/lat WGS84.
5. Coordinates are snap-rounded to 6 decimals (≈ 0.1 m) as one planar coverage: the community
   borders are noded together on the grid and polygonised, each face goes to the community it came
   from, and streets, districts and the city are exact unions of their children. Rounding each polygon
   on its own would open gaps and overlaps along shared borders; this way neighbours share identical
   vertices, children tile their parent exactly and the data stays small as GeoJSON.

Everything random comes from one ``numpy.random.default_rng(seed)``, consumed in a fixed order, so a
seed always gives the same city, down to the last coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from cityops.hierarchy import Level, UnitRecord

CITY_CODE = "990000"  # 99 is not a real province prefix, so demo codes never collide with real ones
CITY_NAME_ZH = "海城市"
CITY_NAME_EN = "Haicheng"

CENTRE_LON = 121.45
CENTRE_LAT = 31.2
CITY_WIDTH_KM = 100.0
CITY_HEIGHT_KM = 80.0
KM_PER_DEGREE_LAT = 110.574
KM_PER_DEGREE_LON = 111.320 * math.cos(math.radians(CENTRE_LAT))
COORDINATE_GRID_DEGREES = 1e-6  # 6 decimals
NODING_GRID_KM = 1e-7  # 0.1 mm: merges separately clipped copies of one border

# Borders bend with waves of these lengths; the slopes of all waves together stay below 1 (see _smooth_warp).
WARP_WAVELENGTHS_KM = (18.0, 6.0, 2.0, 0.7)
WARP_WAVES_PER_OCTAVE = 3
WARP_MAX_SLOPE = 0.9
WARP_VERTEX_SPACING_KM = 0.1

MIN_STREETS_PER_DISTRICT = 3
MIN_COMMUNITIES_PER_STREET = 5
MAX_CHILDREN_PER_UNIT = 999  # a child adds 3 digits to its parent's code

# Urbanness (density on a log scale, 0 = countryside, 1 = the core's peak) from which a street is a
# subdistrict (街道) with communities (社区) rather than a town (镇) with villages (村). Shanghai has
# about as many subdistricts as towns; this gives roughly 60/40.
URBAN_THRESHOLD = 0.55
CORE_PEAK_DENSITY = 30.0  # times the rural density
CORE_RADIUS_KM = 12.0
# District seeds follow a flattened density: central districts come out ~40 km², outer ones ~700 km²
# (Shanghai: 20-55 km² in the centre, hundreds in the suburbs). Streets and communities follow it fully.
DISTRICT_SEED_DENSITY_EXPONENT = 0.85
MIN_COMMUNITY_POPULATION = 1_500
MAX_COMMUNITY_POPULATION = 12_000

Coordinates = np.ndarray  # shape (n, 2), kilometres east/north of the city centre
DensityField = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------


def generate_city(
    seed: int = 2026,
    *,
    districts: int = 16,
    streets: int = 210,
    communities: int = 6000,
    progress: bool = False,
) -> list[UnitRecord]:
    """Generate the demo city: the city first, then districts, streets and communities, each by code.

    The counts come out exactly as requested. ``progress`` shows a tqdm bar over the districts and
    streets being subdivided.
    """
    _check_requested_counts(districts, streets, communities)
    rng = np.random.default_rng(seed)
    outline = _city_outline_km(rng)
    density = _settlement_density(rng, outline)
    warp = _smooth_warp(rng)
    names = _NameBook(rng)
    city = _Draft(CITY_CODE, CITY_NAME_ZH, CITY_NAME_EN, Level.CITY, None, outline, urbanness=1.0)

    with tqdm(
        total=districts + streets + 1, desc=f"Generating {CITY_NAME_EN}", unit="unit", disable=not progress
    ) as bar:
        subdivide = _Subdivider(density, rng, names, bar)
        district_drafts = subdivide.one(city, districts, DISTRICT_SEED_DENSITY_EXPONENT)
        street_drafts = subdivide.each(district_drafts, streets, MIN_STREETS_PER_DISTRICT)
        community_drafts = subdivide.each(street_drafts, communities, MIN_COMMUNITIES_PER_STREET)
        _populate(community_drafts, rng)
        bar.set_postfix_str("bending and rounding borders")
        _finish_geometry(city, district_drafts, street_drafts, community_drafts, warp)
        bar.update(1)

    drafts = [city, *district_drafts, *street_drafts, *community_drafts]
    _sum_populations_upwards(drafts)
    return [draft.to_record() for draft in drafts]


def city_summary(units: Sequence[UnitRecord]) -> dict[Level, int]:
    """How many units there are at each level (every level present, zero if none), for logs and checks."""
    counts = {level: 0 for level in Level}
    for unit in units:
        counts[unit.level] += 1
    return counts


# ----------------------------------------------------------------------------------------------------
# Drafts: mutable units while the city is being built
# ----------------------------------------------------------------------------------------------------


@dataclass
class _Draft:
    """A unit under construction; geometry is in the kilometre plane until the final projection."""

    code: str
    name_zh: str
    name_en: str
    level: Level
    parent_code: str | None
    geometry: BaseGeometry
    urbanness: float  # 0 = open countryside, 1 = the city's densest point
    population: int = 0
    children: list["_Draft"] = field(default_factory=list, repr=False)

    @property
    def is_urban(self) -> bool:
        return self.urbanness >= URBAN_THRESHOLD

    def to_record(self) -> UnitRecord:
        return UnitRecord(self.code, self.name_zh, self.name_en, self.level, self.parent_code,
                          self.population, self.geometry)


def _check_requested_counts(districts: int, streets: int, communities: int) -> None:
    """Fail early with the fix, rather than producing a city that breaks the code scheme. (Too many
    children for one parent's 3 code digits is caught when the counts are split, see ``_apportion``.)"""
    if not 1 <= districts <= 99:
        raise ValueError(f"districts must be between 1 and 99 (two code digits), got {districts}")
    if streets < MIN_STREETS_PER_DISTRICT * districts:
        raise ValueError(f"streets must be at least {MIN_STREETS_PER_DISTRICT} per district "
                         f"({MIN_STREETS_PER_DISTRICT * districts}), got {streets}")
    if communities < MIN_COMMUNITIES_PER_STREET * streets:
        raise ValueError(f"communities must be at least {MIN_COMMUNITIES_PER_STREET} per street "
                         f"({MIN_COMMUNITIES_PER_STREET * streets}), got {communities}")


# ----------------------------------------------------------------------------------------------------
# The city outline and the density field
# ----------------------------------------------------------------------------------------------------


def _city_outline_km(rng: np.random.Generator, vertex_count: int = 900) -> Polygon:
    """A coastline-like outline: a circle whose radius wobbles with a red-noise spectrum, then stretched
    to 100 km × 80 km. The radius stays positive, so the polygon is star-shaped and never crosses itself.
    """
    angles = np.linspace(0.0, 2.0 * math.pi, vertex_count, endpoint=False)
    harmonics = np.arange(2, 90)
    amplitudes = rng.uniform(0.4, 1.0, harmonics.size) * harmonics ** -1.35
    phases = rng.uniform(0.0, 2.0 * math.pi, harmonics.size)
    wobble = (amplitudes[:, None] * np.cos(harmonics[:, None] * angles + phases[:, None])).sum(axis=0)
    radius = 1.0 + wobble * (0.32 / np.abs(wobble).max())
    x, y = radius * np.cos(angles), radius * np.sin(angles)
    x = (x - (x.min() + x.max()) / 2) * (CITY_WIDTH_KM / (x.max() - x.min()))
    y = (y - (y.min() + y.max()) / 2) * (CITY_HEIGHT_KM / (y.max() - y.min()))
    outline = Polygon(np.column_stack([x, y]))
    assert outline.is_valid, "a star-shaped radial polygon is always simple"
    return outline


def _settlement_density(rng: np.random.Generator, outline: Polygon) -> DensityField:
    """Relative density of settlement: 1 in the countryside, a Gaussian peak in the old core and smaller
    peaks in a few satellite new towns (Shanghai has Songjiang, Jiading, Lingang...). Seeds, child counts
    and populations all follow it, which is what makes the core fine-grained and the periphery coarse.
    """
    core = _random_point_inside(rng, outline, near=(0.0, 0.0), within_km=10.0)
    centres = [core]
    radii = [CORE_RADIUS_KM]
    peaks = [CORE_PEAK_DENSITY]
    inland = outline.buffer(-4.0)
    while len(centres) < 5:
        angle, distance = rng.uniform(0, 2 * math.pi), rng.uniform(18.0, 40.0)
        candidate = (core[0] + distance * math.cos(angle), core[1] + distance * math.sin(angle))
        far_from_others = all(math.dist(candidate, c) > 15.0 for c in centres)
        if far_from_others and inland.contains(shapely.Point(candidate)):
            centres.append(candidate)
            radii.append(rng.uniform(4.0, 7.0))
            peaks.append(rng.uniform(3.0, 7.0))
    centre_array, radius_array, peak_array = np.array(centres), np.array(radii), np.array(peaks)

    def density(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        dx = x[..., None] - centre_array[:, 0]
        dy = y[..., None] - centre_array[:, 1]
        return 1.0 + (peak_array * np.exp(-(dx * dx + dy * dy) / radius_array ** 2)).sum(axis=-1)

    return density


def _urbanness(density: DensityField, points: Coordinates) -> np.ndarray:
    """Density on a 0..1 log scale from the rural floor (1) to the core's peak: how urban a place feels."""
    values = density(points[:, 0], points[:, 1])
    return np.clip(np.log(values) / math.log(1.0 + CORE_PEAK_DENSITY), 0.0, 1.0)


def _random_point_inside(
    rng: np.random.Generator, region: BaseGeometry, near: tuple[float, float], within_km: float
) -> tuple[float, float]:
    """A uniformly random point inside ``region`` within ``within_km`` of ``near``."""
    while True:
        x, y = rng.uniform(-within_km, within_km, 2)
        point = (near[0] + x, near[1] + y)
        if math.hypot(x, y) <= within_km and region.contains(shapely.Point(point)):
            return point


def _weight(region: BaseGeometry, density: DensityField, grid: int = 12) -> float:
    """Area × mean density: how many children a unit deserves. The mean comes from a regular grid of
    points inside the region, so no randomness is consumed."""
    min_x, min_y, max_x, max_y = region.bounds
    gx, gy = np.meshgrid(np.linspace(min_x, max_x, grid + 2)[1:-1], np.linspace(min_y, max_y, grid + 2)[1:-1])
    inside = shapely.contains_xy(region, gx.ravel(), gy.ravel())
    if inside.any():
        mean_density = float(density(gx.ravel()[inside], gy.ravel()[inside]).mean())
    else:
        point = region.representative_point()
        mean_density = float(density(np.array([point.x]), np.array([point.y]))[0])
    return region.area * mean_density


def _apportion(total: int, weights: Sequence[float], minimum: int) -> list[int]:
    """Split ``total`` into integers, each at least ``minimum``, the rest in proportion to ``weights``
    (largest remainder method), so the grand total is exact."""
    weights_array = np.asarray(weights, dtype=float)
    spare = total - minimum * len(weights_array)
    shares = weights_array / weights_array.sum() * spare
    counts = np.floor(shares).astype(int)
    leftover = spare - int(counts.sum())
    by_remainder = np.argsort(-(shares - counts), kind="stable")
    counts[by_remainder[:leftover]] += 1
    if counts.max() + minimum > MAX_CHILDREN_PER_UNIT:
        raise ValueError(f"one unit would get {counts.max() + minimum} children; codes allow "
                         f"{MAX_CHILDREN_PER_UNIT}: ask for fewer")
    return [int(count) + minimum for count in counts]


# ----------------------------------------------------------------------------------------------------
# Subdividing a unit into Voronoi cells
# ----------------------------------------------------------------------------------------------------


class _Subdivider:
    """Splits units into Voronoi children, sharing the density field, the random generator, the name
    book and the progress bar that every split needs."""

    def __init__(self, density: DensityField, rng: np.random.Generator, names: "_NameBook", bar: tqdm) -> None:
        self._density, self._rng, self._names, self._bar = density, rng, names, bar

    def each(self, parents: Sequence[_Draft], total: int, minimum: int) -> list[_Draft]:
        """Split ``total`` children among ``parents`` by area × density (at least ``minimum`` each), so
        dense places get more, smaller units; return them all, parent by parent."""
        counts = _apportion(total, [_weight(parent.geometry, self._density) for parent in parents], minimum)
        children: list[_Draft] = []
        for parent, count in zip(parents, counts):
            children += self.one(parent, count)
            self._bar.update(1)
        return children

    def one(self, parent: _Draft, count: int, seed_density_exponent: float = 1.0) -> list[_Draft]:
        """Split ``parent`` into ``count`` children, numbered from the most urban one outwards (as real
        codes list the old core first), named after the kind of place they are."""
        seeds = _sample_seeds(parent.geometry, count, self._density, self._rng, seed_density_exponent)
        cells = _voronoi_cells(parent.geometry, seeds)
        urbanness = _urbanness(self._density, seeds)
        level = Level(parent.level + 1)
        children = []
        for number, index in enumerate(np.argsort(-urbanness, kind="stable"), start=1):
            urban = _is_urban_kind(level, parent, float(urbanness[index]))
            name_zh, name_en = self._names.name_for(level, parent, urban)
            children.append(_Draft(
                code=_child_code(parent, number), name_zh=name_zh, name_en=name_en, level=level,
                parent_code=parent.code, geometry=cells[index], urbanness=float(urbanness[index]),
            ))
        parent.children = children
        return children


def _is_urban_kind(level: Level, parent: _Draft, urbanness: float) -> bool:
    """A street is a subdistrict or a town by its own density; a community is an urban community in a
    subdistrict and a village in a town, whatever its own density, as in the real system."""
    if level == Level.COMMUNITY:
        return parent.is_urban
    return urbanness >= URBAN_THRESHOLD


def _child_code(parent: _Draft, number: int) -> str:
    """Districts are the city's province-and-prefecture digits plus 2; lower levels add 3 digits."""
    if parent.level == Level.CITY:
        return f"{parent.code[:2]}01{number:02d}"
    return f"{parent.code}{number:03d}"


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


# ----------------------------------------------------------------------------------------------------
# Population
# ----------------------------------------------------------------------------------------------------


def _populate(communities: Sequence[_Draft], rng: np.random.Generator) -> None:
    """Residents per community: ~2,500 in a country village up to ~6,000 in the core, with some spread.

    Counts per street already follow density, so people concentrate in the core twice over: more
    communities there, and fuller ones, as in a real megacity.
    """
    urbanness = np.array([c.urbanness for c in communities])
    typical = 2_200.0 + 3_000.0 * urbanness
    spread = rng.lognormal(mean=0.0, sigma=0.25, size=len(communities))
    populations = np.clip(typical * spread, MIN_COMMUNITY_POPULATION, MAX_COMMUNITY_POPULATION)
    for community, population in zip(communities, np.rint(populations).astype(int)):
        community.population = int(population)


def _sum_populations_upwards(drafts_top_down: Sequence[_Draft]) -> None:
    """A unit's population is the sum of its children's: walk bottom-up once."""
    for draft in reversed(drafts_top_down):
        if draft.children:
            draft.population = sum(child.population for child in draft.children)


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
    """Bend, project to lon/lat and round to 6 decimals as one coverage (module docstring, step 5).

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


# ----------------------------------------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------------------------------------


def _syllables(table: str) -> list[tuple[str, str]]:
    """Parse "华hua 木mu ..." into [("华", "hua"), ("木", "mu"), ...]."""
    return [(entry[0], entry[1:]) for entry in table.split()]


# Characters common in Chinese place names, each read one way only in place names (no polyphones such
# as 长/行/重, no ü syllables), so the pinyin below is the reading.
_PLACE_SYLLABLES = _syllables(
    "华hua 木mu 花hua 园yuan 金jin 桥qiao 新xin 民min 安an 康kang 泰tai 和he 平ping 阳yang 光guang "
    "明ming 东dong 西xi 南nan 北bei 江jiang 海hai 湖hu 山shan 林lin 泉quan 石shi 云yun 龙long 凤feng "
    "春chun 秋qiu 丰feng 宁ning 福fu 兴xing 文wen 德de 嘉jia 瑞rui 祥xiang 永yong 庆qing 荣rong 昌chang "
    "吉ji 润run 清qing 溪xi 湾wan 洲zhou 滨bin 塘tang 浦pu 港gang 泾jing 沙sha 松song 竹zhu 梅mei 兰lan "
    "桂gui 枫feng 柳liu 河he 田tian 青qing 翠cui 白bai 虹hong 锦jin 宝bao 玉yu 珠zhu 汇hui 通tong 高gao "
    "古gu 城cheng 里li 坊fang 庄zhuang 曹cao 鹤he 岳yue 恒heng 益yi 振zhen 鸿hong 耀yao 晨chen 星xing"
)
# Districts: a direction or landmark, then a water or land feature (东港, 临江, 滨湖...).
_DISTRICT_FIRST = _syllables(
    "东dong 西xi 南nan 北bei 临lin 滨bin 江jiang 海hai 金jin 宝bao 嘉jia 松song 青qing 云yun 龙long "
    "凤feng 新xin 华hua 丰feng 瑞rui 安an 永yong 泰tai 鹤he"
)
_DISTRICT_SECOND = _syllables(
    "港gang 江jiang 浦pu 湾wan 山shan 湖hu 洲zhou 川chuan 塘tang 汇hui 桥qiao 宁ning 城cheng 阳yang "
    "林lin 滨bin 泾jing 沙sha 门men 口kou"
)
# Villages in the Yangtze delta are mostly named after a founding family and a feature: 陆家, 沈巷...
_SURNAMES = _syllables(
    "陈chen 王wang 张zhang 李li 刘liu 杨yang 黄huang 周zhou 吴wu 徐xu 孙sun 朱zhu 马ma 胡hu 郭guo "
    "何he 林lin 高gao 罗luo 郑zheng 梁liang 谢xie 宋song 唐tang 韩han 冯feng 邓deng 曹cao 彭peng "
    "萧xiao 田tian 董dong 潘pan 袁yuan 蔡cai 蒋jiang 杜du 叶ye 程cheng 魏wei 沈shen 顾gu 钱qian "
    "陆lu 姚yao 严yan 金jin 倪ni 施shi 范fan"
)
_VILLAGE_FEATURES = _syllables(
    "家jia 宅zhai 巷xiang 浜bang 泾jing 塘tang 桥qiao 湾wan 庄zhuang 港gang 埠bu 渡du 墩dun"
)
# Real Shanghai districts and well-known cities the tables could spell, in either script (溪安 would
# read "Xi'an"): a fictional city avoids them.
_REAL_NAMES = frozenset(
    "浦东 黄浦 徐汇 长宁 静安 普陀 虹口 杨浦 闵行 宝山 嘉定 金山 松江 青浦 奉贤 崇明 海城 "
    "南宁 西宁 西安 南昌 南通 东莞 泰安 福州 龙岩 江门 湖州 金华 丽江 青岛 海口 海门 江阴 海宁 "
    "松原 平阳 东阳 安阳 新安 龙口 "
    "Pudong Huangpu Xuhui Changning Jing'an Putuo Hongkou Yangpu Minhang Baoshan Jiading Jinshan "
    "Songjiang Qingpu Fengxian Chongming Haicheng Nanning Xining Xi'an Nanchang Nantong Dongguan Tai'an "
    "Fuzhou Longyan Jiangmen Huzhou Jinhua Lijiang Qingdao Haikou Haimen Jiangyin Haining Songyuan "
    "Pingyang Dongyang Anyang Xin'an Longkou Shanghai Suzhou Hangzhou Nanjing Ningbo Wuxi".split()
)

_KIND_SUFFIX: dict[tuple[Level, bool], tuple[str, str]] = {
    (Level.DISTRICT, True): ("区", "District"),
    (Level.DISTRICT, False): ("区", "District"),
    (Level.STREET, True): ("街道", "Subdistrict"),
    (Level.STREET, False): ("镇", "Town"),
    (Level.COMMUNITY, True): ("社区", "Community"),
    (Level.COMMUNITY, False): ("村", "Village"),
}


def _pinyin_word(readings: Sequence[str]) -> str:
    """Join syllables into one capitalised word, with the apostrophe pinyin requires before a syllable
    starting with a, o or e (新安 → Xin'an), so the English reads back unambiguously."""
    word = readings[0]
    for reading in readings[1:]:
        word += ("'" if reading[0] in "aoe" else "") + reading
    return word.capitalize()


class _NameBook:
    """Hands out bilingual names, unique where the app needs them to be.

    District and street names are unique city-wide (in Chinese and in pinyin, since 华 and 花 read
    alike); community names are unique within their street. Draws come from the city's generator, so
    names are as deterministic as the map.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._citywide: set[str] = set(_REAL_NAMES)
        self._by_parent: dict[str, set[str]] = {}

    def name_for(self, level: Level, parent: _Draft, urban: bool) -> tuple[str, str]:
        """A fresh ``(name_zh, name_en)`` for a child of ``parent`` of kind urban or rural."""
        if level == Level.COMMUNITY:
            used = self._by_parent.setdefault(parent.code, set())
            first, second = (_PLACE_SYLLABLES, _PLACE_SYLLABLES) if urban else (_SURNAMES, _VILLAGE_FEATURES)
        elif level == Level.DISTRICT:
            used, (first, second) = self._citywide, (_DISTRICT_FIRST, _DISTRICT_SECOND)
        else:
            used, (first, second) = self._citywide, (_PLACE_SYLLABLES, _PLACE_SYLLABLES)
        stem_zh, stem_en = self._fresh_stem(first, second, used)
        suffix_zh, suffix_en = _KIND_SUFFIX[(level, urban)]
        return stem_zh + suffix_zh, f"{stem_en} {suffix_en}"

    def _fresh_stem(
        self, first: list[tuple[str, str]], second: list[tuple[str, str]], used: set[str]
    ) -> tuple[str, str]:
        for _ in range(10_000):
            (zh1, py1), (zh2, py2) = first[self._rng.integers(len(first))], second[self._rng.integers(len(second))]
            stem_zh, stem_en = zh1 + zh2, _pinyin_word([py1, py2])
            if zh1 != zh2 and stem_zh not in used and stem_en not in used:
                used.update((stem_zh, stem_en))
                return stem_zh, stem_en
        raise ValueError("ran out of distinct place names: the syllable tables are too small for this city")

