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

Steps 1 and 2, the drafts and the populations live here; seeds and Voronoi cells (step 3) in
``demo_cells``, bending, projection and rounding (steps 4 and 5) in ``demo_borders``, and the names in
``demo_names``.

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

from cityops.demo_borders import _finish_geometry, _smooth_warp
from cityops.demo_cells import _sample_seeds, _voronoi_cells
from cityops.demo_names import _NameBook
from cityops.hierarchy import Level, UnitRecord

CITY_CODE = "990000"  # 99 is not a real province prefix, so demo codes never collide with real ones
CITY_NAME_ZH = "海城市"
CITY_NAME_EN = "Haicheng"

CITY_WIDTH_KM = 100.0
CITY_HEIGHT_KM = 80.0

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

    def __init__(self, density: DensityField, rng: np.random.Generator, names: _NameBook, bar: tqdm) -> None:
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
