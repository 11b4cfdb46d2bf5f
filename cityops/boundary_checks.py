"""Checking that the features read form one city (stages 2 and 3 of `cityops.boundary_import`).

Stage 2 resolves every feature's level and parent (from the level and parent columns, statistical division
codes or the depth in the parent chain) and finds or synthesises the city; stage 3 checks that each unit lies
inside its parent. The rules, and which findings are skipped because they would only echo earlier ones, are
described in `cityops.boundary_import`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np
import shapely
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from cityops.boundary_problems import _Feature, _Problems
from cityops.hierarchy import Level, UnitRecord, level_of_statistical_code, parent_of_statistical_code

if TYPE_CHECKING:
    from cityops.boundary_import import FieldMap

# A child may stick out of its parent by this share of its own area: real layers are digitised separately.
OUTSIDE_TOLERANCE = 0.01
# Municipalities directly under the central government: their districts hang straight from the province-level
# code (110101 → 110000), other cities' districts from the city's 4-digit prefix (440303 → 440300).
MUNICIPALITY_PREFIXES = {"11", "12", "31", "50"}


# ---------------------------------------------------------------------------------------------- stage 2: tree


@dataclass
class _City:
    code: str
    synthesised: bool
    feature: _Feature | None = None


def _build_tree(features: list[_Feature], fields: FieldMap, city_code: str | None,
                problems: _Problems) -> _City | None:
    """Resolve every feature's level and parent; None when problems leave the tree unresolved."""
    before = problems.total
    by_code: dict[str, _Feature] = {}
    for feature in features:
        first = by_code.setdefault(feature.code, feature)
        if first is not feature:
            same_file = "" if first.path == feature.path else f" of {first.path}"
            problems.feature(feature, f"duplicate code {feature.code}, already used by features[{first.index}]"
                                      f"{same_file} ({first.name_zh}); every code must be unique")
            feature.flagged = first.flagged = True

    # Levels that need no context: the level column, the given city code, statistical codes.
    for feature in features:
        statistical = _statistical_code(feature.code)
        if feature.level is None:
            if city_code is not None and feature.code == city_code:
                feature.level = Level.CITY
            elif statistical is not None:
                feature.level = statistical[0]
        if statistical is not None and feature.level is not None and statistical[0] == feature.level:
            feature.statistical_parents = statistical[1]

    cities = [f for f in features if f.level == Level.CITY]
    for extra in cities[1:]:
        problems.feature(extra, f"a second city (the first is {cities[0].code} at {cities[0].path}, "
                                f"features[{cities[0].index}]); import one city at a time, or fix the level")
        extra.flagged = True
    city_feature = cities[0] if cities else None
    if city_feature is not None and city_code is not None and city_feature.code != city_code:
        problems.feature(city_feature, f"the file's city has code {city_feature.code} but city code "
                                       f"{city_code} was given; leave the city code out or make them match")
        city_feature.flagged = True

    # The city code the districts point to when the file holds no city.
    virtual = city_feature.code if city_feature else city_code
    if virtual is None:
        dangling = {f.parent for f in features
                    if f.parent and f.parent not in by_code and f.level in (None, Level.DISTRICT)}
        if len(dangling) == 1:
            virtual = dangling.pop()

    # Arbitrary codes: the level follows from the depth below the city.
    unknown = [f for f in features if f.level is None]
    if unknown and not fields.parent:
        for feature in unknown:
            if feature.flagged:  # e.g. an unreadable level: already reported
                continue
            problems.feature(feature, "cannot tell the level: the code is not a 6/9/12-digit statistical code; "
                                      "give a level column (--level-field) or a parent-code column "
                                      "(--parent-field)")
            feature.flagged = True
    elif unknown:
        roots = [f for f in unknown if not f.parent]
        if city_feature is None and virtual is None and len(roots) == 1:
            roots[0].level = Level.CITY
            city_feature = roots[0]
            virtual = city_feature.code
        for feature in roots:
            if feature.level is None:
                feature.level = Level.DISTRICT
        for feature in unknown:
            _level_by_depth(feature, by_code, virtual, problems)
        for feature in unknown:
            if feature.level is not None or feature.dead_end:
                continue
            if feature.parent not in by_code:
                problems.feature(feature, f"unknown parent {feature.parent} (property {fields.parent!r}): "
                                          "no feature has that code; check the parent code or add the missing unit")
            feature.flagged = True  # otherwise a unit up its parent chain has the reported problem

    if city_feature is not None:
        city = _City(city_feature.code, synthesised=False, feature=city_feature)
    else:
        districts = [f for f in features if f.level == Level.DISTRICT]
        code = virtual or _derive_city_code([f.code for f in districts])
        city = _City(code, synthesised=True)
        if not districts:
            problems.add("no feature is a district, so there is no city to build; check the level column "
                         "(--level-field) or the code field (--code-field)")
        clash = by_code.get(code)
        if clash is not None:
            problems.feature(clash, f"uses code {code}, which is the code of the city built from the "
                                    "districts; give the city another code (--city-code)")
            clash.flagged = True

    # Parents.
    for feature in features:
        if feature.level is None:
            continue
        if feature.level == Level.CITY:
            feature.parent_code = None
            continue
        if feature.parent:
            feature.parent_code = feature.parent
            source = f"property {fields.parent!r}"
        elif feature.statistical_parents:
            candidates = [city.code if c is None else c for c in feature.statistical_parents]
            feature.parent_code = next((c for c in candidates if c in by_code), candidates[0])
            source = "derived from the statistical code"
        elif feature.level == Level.DISTRICT:
            feature.parent_code = city.code
            source = "the city"
        else:
            column = f"the parent property {fields.parent!r} is empty" if fields.parent else "no parent column"
            problems.feature(feature, f"a {feature.level.name.lower()} needs a parent, but {column}; give "
                                      "the parent code (--parent-field) or use statistical codes")
            feature.flagged = True
            continue
        _check_parent(feature, source, by_code, city, problems)

    unresolved = [f for f in features if f.level is None and not f.flagged]
    if unresolved:  # a safety net: every unit without a level should have been reported above
        problems.feature(unresolved[0], "cannot tell the level; give a level column (--level-field)")
    if problems.total > before or any(f.level is None for f in features):
        return None
    return city


def _level_by_depth(feature: _Feature, by_code: dict[str, _Feature], virtual: str | None,
                    problems: _Problems) -> None:
    """Give `feature` and the unknown units above it their level from the nearest unit whose level is known."""
    chain = [feature]  # units without a level, from `feature` upwards
    while True:
        current = chain[-1]
        if current.dead_end:
            break
        parent = current.parent
        if parent is None:  # roots have a level by now; a safety net
            break
        if parent not in by_code:
            if parent == virtual:
                _assign_levels(chain, Level.CITY, problems)
            return  # otherwise reported as an unknown parent
        following = by_code[parent]
        if following.level is not None:
            _assign_levels(chain, following.level, problems)
            return
        if following in chain:
            cycle = chain[chain.index(following):]
            loop = " → ".join(unit.code for unit in cycle + [following])
            problems.feature(following, f"the parent codes go round in a circle ({loop}); fix the parent column")
            for unit in cycle:
                unit.dead_end = unit.flagged = True
            break
        chain.append(following)
    for unit in chain:  # below a loop: no level, nothing more to say
        unit.dead_end = unit.flagged = True


def _assign_levels(chain: list[_Feature], top: Level, problems: _Problems) -> None:
    for depth, unit in enumerate(reversed(chain), start=1):
        level = top + depth
        if level > Level.COMMUNITY:
            problems.feature(unit, f"lies {level} levels below the city; OneScreen holds city → district → "
                                   "street → community only: leave the deeper levels out")
            for below in chain[:len(chain) - depth + 1]:
                below.dead_end = below.flagged = True
            return
        unit.level = Level(level)


def _check_parent(feature: _Feature, source: str, by_code: dict[str, _Feature], city: _City,
                  problems: _Problems) -> None:
    kind = feature.level.name.lower()
    wanted = Level(feature.level - 1).name.lower()
    if feature.parent_code == city.code and city.synthesised:
        if feature.level != Level.DISTRICT:
            problems.feature(feature, f"is a {kind} but its parent {city.code} ({source}) is the city; "
                                      f"a {kind}'s parent must be a {wanted}")
            feature.flagged = True
        return
    parent = by_code.get(feature.parent_code)
    if parent is None:
        if source.startswith("derived"):
            fix = (f"add the {wanted} {feature.parent_code} or give parent codes (--parent-field)")
        else:
            fix = f"check the parent code or add the missing {wanted}"
        problems.feature(feature, f"unknown parent {feature.parent_code} ({source}): no feature has that "
                                  f"code; {fix}")
        feature.flagged = True
        return
    if parent.level is None:
        feature.flagged = True  # the parent's own problem was reported
        return
    if parent.level != feature.level - 1:
        problems.feature(feature, f"is a {kind} but its parent {parent.code} ({parent.name_zh}, {source}) "
                                  f"is a {parent.level.name.lower()}; a {kind}'s parent must be a {wanted}, "
                                  "exactly one level up: fix the parent or the level")
        feature.flagged = True


def _synthesise_city(code: str, name_zh: str, name_en: str, districts: list[_Feature]) -> UnitRecord:
    union = shapely.union_all(np.array([f.geometry for f in districts], dtype=object))
    return UnitRecord(code=code, name_zh=name_zh, name_en=name_en or name_zh, level=Level.CITY, parent_code=None,
                      population=sum(f.population for f in districts), geometry=_polygonal(union))


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """A valid Polygon or MultiPolygon (unions of real layers may leave slivers and stray lines)."""
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    if isinstance(geometry, (Polygon, MultiPolygon)):
        return geometry
    polygons: list[Polygon] = []
    for part in getattr(geometry, "geoms", []):
        if isinstance(part, Polygon):
            polygons.append(part)
        elif isinstance(part, MultiPolygon):
            polygons.extend(part.geoms)
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


# --------------------------------------------------------------------------------------- stage 3: containment


def _check_containment(features: list[_Feature], city: _City, problems: _Problems, progress: bool) -> None:
    """Each unit inside its parent up to `OUTSIDE_TOLERANCE`: children grouped per parent, vectorised."""
    by_code: dict[str, _Feature] = {}
    for feature in features:
        by_code.setdefault(feature.code, feature)
    groups: dict[str, list[_Feature]] = defaultdict(list)
    for feature in features:
        if feature.parent_code is None or feature.flagged or feature.geometry is None:
            continue
        if city.synthesised and feature.parent_code == city.code:
            continue  # the city is the union of its districts
        parent = by_code[feature.parent_code]
        if parent.geometry is not None and not parent.flagged:
            groups[parent.code].append(feature)
    for parent_code, children in tqdm(groups.items(), desc="Checking containment", unit="parent",
                                      disable=not progress):
        parent = by_code[parent_code]
        area = parent.geometry.buffer(0)
        shapely.prepare(area)
        shapes = np.array([c.geometry for c in children], dtype=object)
        covered = shapely.covers(area, shapes)
        for child, inside in zip(children, covered):
            if inside:
                continue
            share = _share_outside(child.geometry, area)
            if share > OUTSIDE_TOLERANCE:
                problems.feature(
                    child, f"lies {share:.1%} outside its parent {parent.code} ({parent.name_zh}); at "
                    f"most {OUTSIDE_TOLERANCE:.0%} is tolerated: check the parent code, and that both layers "
                    "use the same coordinates (WGS 84, not GCJ-02 or a projection)")
                child.flagged = True


def _share_outside(child: BaseGeometry, parent: BaseGeometry) -> float:
    child_area = child.area
    if child_area <= 0:
        return 0.0
    # Clipping the parent to the child's box keeps the overlay small when the parent has many vertices.
    window = shapely.clip_by_rect(parent, *child.bounds)
    try:
        outside = shapely.difference(child, window).area
    except GEOSException:
        outside = shapely.difference(child.buffer(0), window.buffer(0)).area
    return outside / child_area


# ------------------------------------------------------------------------------------------ statistical codes


def _statistical_code(code: str | None) -> tuple[Level, list[str | None]] | None:
    """Level and parent candidates of a statistical division code (None in the list = the city).

    Understands 6/9/12-digit codes and the zero-padded 12-digit form of every level (440303000000 district,
    440303001000 street); the first candidate present in the files becomes the parent.
    """
    if code is None or not code.isdigit():
        return None
    if len(code) == 6 and code.endswith("00"):
        return Level.CITY, []
    if len(code) == 12:
        if code[4:] == "00000000":
            return Level.CITY, []
        if code[6:] == "000000":
            return Level.DISTRICT, [None]
        if code[9:] == "000":
            return Level.STREET, [code[:6] + "000000", code[:6]]
        return Level.COMMUNITY, [code[:9], code[:9] + "000"]
    level = level_of_statistical_code(code)
    if level is None:
        return None
    parent = parent_of_statistical_code(code, "")
    return level, [parent or None]


def _derive_city_code(district_codes: Iterable[str]) -> str:
    codes = list(district_codes)
    if not codes or not all(c.isdigit() and len(c) in (6, 12) for c in codes):
        return "city"
    pad = "000000" if all(len(c) == 12 for c in codes) else ""
    prefixes4 = {c[:4] for c in codes}
    prefixes2 = {c[:2] for c in codes}
    if len(prefixes2) != 1:
        return "city"
    province = prefixes2.pop()
    if len(prefixes4) == 1 and province not in MUNICIPALITY_PREFIXES:
        return prefixes4.pop() + "00" + pad
    return province + "0000" + pad
