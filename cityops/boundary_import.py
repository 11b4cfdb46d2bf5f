"""Importing a city's real administrative boundaries from GeoJSON, checked in full before anything is stored.

A city hands over one GeoJSON FeatureCollection holding every level (or several files, one per level; their
features are simply concatenated). Each feature is a Polygon or MultiPolygon with properties naming its code,
its Chinese name and optionally an English name, a parent code, a level and a population. `FieldMap` says
which property holds what; its defaults fit common Chinese open data.

Levels and parents come from, in this order of preference:

* an explicit level column (city/district/street/community, 0-3, or 市/区/县/街道/镇/乡/社区/村 ...) and an
  explicit parent column (a code, or a DataV-style object such as ``{"adcode": 440300}``);
* China's statistical division codes: 6 digits for a district, 9 for a street or town, 12 for a community or
  village, the parent being the code's prefix. A 6-digit code ending in ``00`` is a city, and the 12-digit
  zero-padded form of the national statistics (``440303000000`` district, ``440303001000`` street) is
  understood too;
* for arbitrary codes (``"PD-01"``), the depth in the parent chain: a unit without a parent is the city when
  it is the only one, otherwise the parent-less units are districts.

If no feature is the city, the city is synthesised from the districts: its geometry is their union and its
population their sum. Its code is ``city_code`` when given; otherwise the one code all districts name as their
(absent) parent; otherwise derived from statistical district codes (``440303`` → ``440300``; for the
municipalities Beijing, Tianjin, Shanghai and Chongqing ``110101`` → ``110000``); otherwise ``"city"``.

Validation runs in three stages, and every problem of a stage is collected (up to 20 are listed, the rest
counted) into ONE `BoundaryImportError`, so a data steward can fix a file in one pass instead of one error
per run:

1. reading: files, JSON, the FeatureCollection, each feature's geometry (type, well-formedness, validity,
   WGS 84 lon/lat range) and properties (code, name, level, population);
2. the tree: unique codes, every parent known and exactly one level up, a single city;
3. containment: each unit lies inside its parent, tolerating up to 1 % of its area outside (real boundary
   layers never align exactly).

The tree stage is skipped when a file could not be read or a feature has no readable code, and containment
is skipped for units whose own or parent's geometry or tree position is already reported, because such
findings would only echo the first ones. Nothing is stored unless everything passes, and `import_boundaries`
replaces the units in one transaction, so a failed import leaves the previous units untouched.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import shapely
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity
from tqdm import tqdm

from cityops.boundaries import HierarchyError, replace_units
from cityops.db import migrate, session_scope
from cityops.hierarchy import Level, UnitRecord, level_of_statistical_code, parent_of_statistical_code
from cityops.settings import Settings

# A child may stick out of its parent by this share of its own area: real layers are digitised separately.
OUTSIDE_TOLERANCE = 0.01
# How many problems one error lists; the rest are counted.
MAX_LISTED_PROBLEMS = 20
# Column widths of the units table (models.Unit): longer values would fail on PostgreSQL.
MAX_CODE_LENGTH = 32
MAX_NAME_LENGTH = 120
# Municipalities directly under the central government: their districts hang straight from the province-level
# code (110101 → 110000), other cities' districts from the city's 4-digit prefix (440303 → 440300).
MUNICIPALITY_PREFIXES = {"11", "12", "31", "50"}

_FIX_GEOMETRY = ('repair it, e.g. with QGIS "Fix geometries" (Processing toolbox) or PostGIS '
                 "ST_MakeValid, then import again")

_LEVEL_WORDS: dict[str, Level] = {}
for _level, _words in {
    Level.CITY: ("0", "city", "市", "地级市", "城市", "直辖市", "municipality", "prefecture"),
    Level.DISTRICT: ("1", "district", "county", "区", "县", "区县", "县区", "县级市", "旗", "市辖区", "自治县"),
    Level.STREET: ("2", "street", "town", "township", "subdistrict", "街道", "镇", "乡", "街道/镇", "乡镇",
                   "街镇", "街道办", "街道办事处", "苏木", "民族乡"),
    Level.COMMUNITY: ("3", "community", "village", "社区", "村", "社区/村", "村居", "居委会", "村委会",
                      "居民委员会", "村民委员会", "嘎查"),
}.items():
    for _word in _words:
        _LEVEL_WORDS[_word] = _level
_LEVEL_HELP = "city/district/street/community, 0-3, or 市/区/县/街道/镇/乡/社区/村"


@dataclass(frozen=True)
class FieldMap:
    """Which feature properties hold what; the defaults fit common Chinese open data."""

    code: str = "code"
    name_zh: str = "name"
    name_en: str | None = "name_en"  # optional; when absent or empty, the English name is the Chinese one
    parent: str | None = None  # explicit parent-code column; when None, parents come from statistical codes
    level: str | None = None  # explicit level column; when None, levels come from code length or depth
    population: str | None = "population"  # optional; missing → 0


class BoundaryImportError(ValueError):
    """The boundary files cannot be imported; nothing was stored.

    The message lists each problem as ``<file>, features[<i>] (code <code>, name <name>): <problem>; <fix>``.
    `problems` holds those lines (at most `MAX_LISTED_PROBLEMS`), `total` how many were found in all.
    """

    def __init__(self, problems: list[str], total: int | None = None):
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        super().__init__(_format_problems(self.problems, self.total))


def _format_problems(problems: list[str], total: int) -> str:
    noun = "problem" if total == 1 else "problems"
    lines = [f"cannot import the boundaries, {total} {noun} found (nothing was imported):"]
    lines += [f"  - {problem}" for problem in problems]
    if total > len(problems):
        lines.append(f"  ... and {total - len(problems)} more; fix these and run the import again to see the rest")
    return "\n".join(lines)


class _Problems:
    """Problems in reading order: by stage, then file, then feature."""

    def __init__(self) -> None:
        self.stage = 1  # 1 reading, 2 tree, 3 containment
        self.file_no = 0  # the file being read, for problems of the whole file
        self._items: list[tuple[tuple[int, int, int], int, str]] = []

    def add(self, text: str) -> None:
        """A problem of the current file, or of the whole import after reading."""
        self._items.append(((self.stage, self.file_no, -1), len(self._items), text))

    def feature(self, feature: "_Feature", text: str) -> None:
        """A problem of one feature; the message starts with the file, the feature index, code and name."""
        self._items.append(((self.stage, feature.file_no, feature.index), len(self._items),
                            f"{feature.where()}: {text}"))

    @property
    def total(self) -> int:
        return len(self._items)

    def raise_if_any(self) -> None:
        if self._items:
            listed = [text for _, _, text in sorted(self._items)[:MAX_LISTED_PROBLEMS]]
            raise BoundaryImportError(listed, self.total)


@dataclass(eq=False)
class _Feature:
    path: str
    file_no: int
    index: int
    code: str | None = None
    name_zh: str | None = None
    name_en: str | None = None
    level: Level | None = None
    parent: str | None = None  # from the parent column
    parent_code: str | None = None  # resolved
    population: int = 0
    population_given: bool = False
    geometry: BaseGeometry | None = None
    flagged: bool = False  # a problem was reported: later checks leave it alone
    dead_end: bool = False  # in a parent loop or too deep: no level can be given
    statistical_parents: list[str] = field(default_factory=list)

    def where(self) -> str:
        code = f"code {self.code}" if self.code is not None else "no code"
        shown = self.name_zh if not self.name_zh or len(self.name_zh) <= 40 else self.name_zh[:39] + "…"
        name = f", name {shown}" if shown else ""
        return f"{self.path}, features[{self.index}] ({code}{name})"


# --------------------------------------------------------------------------------------------------- public API


def read_units(paths, fields: FieldMap, city_code: str | None, city_name_zh: str, city_name_en: str,
               *, progress: bool = False) -> list[UnitRecord]:
    """Read and fully validate GeoJSON boundary files into unit records (city first, then in file order).

    `paths` is one path or a list of paths whose features are concatenated. Raises `BoundaryImportError`
    listing up to 20 problems (see the module docstring for the stages); returns records only when all pass.
    `city_code`, `city_name_zh` and `city_name_en` name the city when it has to be synthesised; `city_code`
    None derives it (see the module docstring).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise BoundaryImportError(["no boundary file given; pass one or more GeoJSON files"])
    city_code = _text(city_code) if city_code is not None else None
    problems = _Problems()
    features, complete = _read_features(paths, fields, problems, progress)
    if not complete:
        problems.raise_if_any()
    problems.stage = 2
    city = _build_tree(features, fields, city_code, problems)
    if city is None:  # the tree could not be resolved; containment would echo its problems
        problems.raise_if_any()
    problems.stage = 3
    _check_containment(features, city, problems, progress)
    problems.raise_if_any()
    districts = [f for f in features if f.level == Level.DISTRICT]
    records: list[UnitRecord] = []
    if city.synthesised:
        records.append(_synthesise_city(city.code, city_name_zh, city_name_en, districts))
    elif not city.feature.population_given:
        city.feature.population = sum(f.population for f in districts)
    records += [
        UnitRecord(code=f.code, name_zh=f.name_zh, name_en=f.name_en or f.name_zh, level=f.level,
                   parent_code=f.parent_code, population=f.population, geometry=f.geometry)
        for f in features
    ]
    return records


def import_boundaries(database_url: str, paths, fields: FieldMap = FieldMap(), *, city_code: str | None = None,
                      city_name_zh: str | None = None, city_name_en: str | None = None,
                      progress: bool = False) -> dict[str, int]:
    """Validate the boundary files, then replace all units in ONE transaction: all or nothing.

    Returns the number of units stored per level, e.g. ``{"city": 1, "district": 2, "street": 4,
    "community": 8}`` (every level present, zero when absent). City names default to the deployment settings
    (ONESCREEN_CITY_NAME_ZH / _EN) and are only used when the file holds no city feature. Raises
    `BoundaryImportError` when the files are not valid, leaving the database untouched.
    """
    if city_name_zh is None or city_name_en is None:
        settings = Settings.from_env()
        city_name_zh = city_name_zh or settings.city_name_zh
        city_name_en = city_name_en or settings.city_name_en
    records = read_units(paths, fields, city_code, city_name_zh, city_name_en, progress=progress)
    migrate(database_url)
    try:
        with session_scope(database_url) as session:
            replace_units(session, records)
    except HierarchyError as error:  # read_units checks the same rules first; this is a safety net
        raise BoundaryImportError([str(error)]) from error
    counts = {level.name.lower(): 0 for level in Level}
    for record in records:
        counts[record.level.name.lower()] += 1
    return counts


# ------------------------------------------------------------------------------------------- stage 1: reading


def _read_features(paths: list[Path], fields: FieldMap, problems: _Problems,
                   progress: bool) -> tuple[list[_Feature], bool]:
    """Every feature of every file, checked one by one; complete is False when the tree cannot be trusted."""
    complete = True
    collections: list[tuple[int, str, list]] = []
    for file_no, path in enumerate(paths):
        problems.file_no = file_no
        raw = _load_collection(path, problems)
        if raw is None:
            complete = False
        else:
            collections.append((file_no, str(path), raw))
    features: list[_Feature] = []
    everywhere: set[str] = set()
    with tqdm(total=sum(len(raw) for _, _, raw in collections), desc="Reading boundaries", unit="feature",
              disable=not progress) as bar:
        for file_no, name, raw in collections:
            problems.file_no = file_no
            present = _properties_present(raw)
            everywhere |= present
            missing = [(what, prop, option) for what, prop, option in
                       (("code", fields.code, "--code-field"), ("name", fields.name_zh, "--name-field"))
                       if prop not in present]
            for what, prop, option in missing:  # once for the file rather than for each of its features
                problems.add(f"{name}: {_wrong_field(what, prop, option, present)}")
            if missing:
                complete = False
                bar.update(len(raw))
                continue
            file_features = []
            for index, item in enumerate(raw):
                feature = _read_feature(name, file_no, index, item, fields, problems)
                if feature.code is None:
                    complete = False
                file_features.append(feature)
                bar.update(1)
            _check_geometries(name, file_features, problems)
            features += file_features
    problems.file_no = len(paths)  # later problems of the whole import come after those of features
    if everywhere:
        before = problems.total
        _optional_fields_present([name for _, name, _ in collections], fields, everywhere, problems)
        complete = complete and problems.total == before
    return features, complete


def _load_collection(path: Path, problems: _Problems) -> list | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.add(f"{path}: file not found; check the path")
        return None
    except IsADirectoryError:
        problems.add(f"{path}: is a directory; pass the GeoJSON file(s) inside it")
        return None
    except OSError as error:
        problems.add(f"{path}: cannot be read ({error.strerror or error}); check the path and permissions")
        return None
    try:
        text = data.decode("utf-8-sig")  # GeoJSON is UTF-8 (RFC 7946); tolerate the BOM some editors write
    except UnicodeDecodeError as error:
        hint = ""
        try:
            data.decode("gb18030")
            hint = " (it looks GBK/GB18030-encoded)"
        except UnicodeDecodeError:
            pass
        problems.add(f"{path}: not UTF-8 text at byte {error.start}{hint}; GeoJSON must be UTF-8: re-save it "
                     "as UTF-8, e.g. `iconv -f GB18030 -t UTF-8` or QGIS Export with encoding UTF-8")
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        problems.add(f"{path}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}; "
                     "fix the file (is it complete? an editor or a JSON validator shows the spot)")
        return None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        found = document.get("type") if isinstance(document, dict) else type(document).__name__
        problems.add(f"{path}: not a GeoJSON FeatureCollection (top-level type is {found!r}); export the layer "
                     'as GeoJSON with all features, e.g. `ogr2ogr -f GeoJSON out.geojson in.shp`')
        return None
    raw = document.get("features")
    if not isinstance(raw, list):
        problems.add(f"{path}: the FeatureCollection has no 'features' list; export the layer again as GeoJSON")
        return None
    if not raw:
        problems.add(f"{path}: the FeatureCollection has no features; is this the right file or layer?")
        return None
    return raw


def _properties_present(raw: list) -> set[str]:
    present: set[str] = set()
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("properties"), dict):
            present.update(item["properties"])
    return present


def _wrong_field(what: str, prop: str, option: str, present: set[str]) -> str:
    listing = ", ".join(sorted(present)) or "(none)"
    return (f"no feature has the {what} property {prop!r}; the properties present are: {listing}; choose the "
            f"right one ({option})")


def _optional_fields_present(names: list[str], fields: FieldMap, present: set[str], problems: _Problems) -> None:
    """A parent or level column, or a renamed optional one, must exist in one of the files at least.

    (A file of districts may well lack the parent column the files of streets and communities have.)
    """
    defaults = FieldMap()
    wanted = [("English name", fields.name_en, "--name-en-field", fields.name_en != defaults.name_en),
              ("parent", fields.parent, "--parent-field", True), ("level", fields.level, "--level-field", True),
              ("population", fields.population, "--population-field", fields.population != defaults.population)]
    for what, prop, option, required in wanted:
        if prop and required and prop not in present:
            problems.add(f"{', '.join(names)}: {_wrong_field(what, prop, option, present)}")


def _read_feature(path: str, file_no: int, index: int, item: object, fields: FieldMap,
                  problems: _Problems) -> _Feature:
    feature = _Feature(path, file_no, index)

    def problem(text: str) -> None:
        problems.feature(feature, text)
        feature.flagged = True

    if not isinstance(item, dict) or item.get("type") != "Feature":
        problem("is not a GeoJSON Feature object; export the layer again as GeoJSON")
        return feature
    properties = item.get("properties") or {}
    if not isinstance(properties, dict):
        properties = {}
    listing = f"its properties: {', '.join(sorted(properties))}" if properties else "it has no properties"

    code = _code_value(properties.get(fields.code))
    name_zh = _text(properties.get(fields.name_zh))
    feature.code, feature.name_zh = code, name_zh
    if code is None:
        state = "is empty" if fields.code in properties else "is missing"
        problem(f"the code property {fields.code!r} {state}; every unit needs a unique code ({listing}; "
                "choose the code property with --code-field)")
    elif len(code) > MAX_CODE_LENGTH:
        problem(f"the code is {len(code)} characters long; at most {MAX_CODE_LENGTH} are stored")
    if name_zh is None:
        state = "is empty" if fields.name_zh in properties else "is missing"
        problem(f"the name property {fields.name_zh!r} {state} ({listing}; choose the name property with "
                "--name-field)")
    elif len(name_zh) > MAX_NAME_LENGTH:
        problem(f"the name is {len(name_zh)} characters long; at most {MAX_NAME_LENGTH} are stored")
    if fields.name_en:
        feature.name_en = _text(properties.get(fields.name_en))
        if feature.name_en and len(feature.name_en) > MAX_NAME_LENGTH:
            problem(f"the English name is {len(feature.name_en)} characters long; at most {MAX_NAME_LENGTH} "
                    "are stored")
    if fields.parent:
        value = properties.get(fields.parent)
        if isinstance(value, dict):  # DataV / Aliyun GeoAtlas: "parent": {"adcode": 440300}
            value = value.get("adcode", value.get("code"))
        feature.parent = _code_value(value)
    if fields.level:
        value = properties.get(fields.level)
        if _text(value) is not None:
            feature.level = _parse_level(value)
            if feature.level is None:
                problem(f"level {value!r} (property {fields.level!r}) is not understood; use {_LEVEL_HELP}")
    if fields.population:
        value = properties.get(fields.population)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            population = _population(value)
            if population is None:
                problem(f"population {value!r} (property {fields.population!r}) is not a non-negative number; "
                        "give a whole number of residents, or leave it empty for unknown (counted as 0)")
            else:
                feature.population, feature.population_given = population, True

    geometry = item.get("geometry")
    if not geometry:
        problem("has no geometry; every unit needs its boundary polygon (delete the feature or draw it)")
        return feature
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        problem(f"has a {kind or 'malformed'} geometry; only Polygon and MultiPolygon boundaries can be "
                "imported (export the area layer, not points or lines)")
        return feature
    try:
        parsed = _shape(kind, geometry.get("coordinates"))
    except (ValueError, TypeError, GEOSException) as error:
        problem(f"has malformed {kind} coordinates ({error}); {_FIX_GEOMETRY}")
        return feature
    if parsed.is_empty:
        problem(f"has an empty {kind}; every unit needs its boundary polygon (delete the feature or draw it)")
        return feature
    feature.geometry = parsed
    return feature


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


# ------------------------------------------------------------------------------------------ stage 3: geometry


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


# ------------------------------------------------------------------------------------------------- values


def _text(value: object) -> str | None:
    """A property as trimmed text; numbers become text, empty becomes None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = int(value) if value.is_integer() else value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _code_value(value: object) -> str | None:
    return _text(value)


def _parse_level(value: object) -> Level | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().lower()
    if text in _LEVEL_WORDS:
        return _LEVEL_WORDS[text]
    try:
        return Level.parse(text)
    except ValueError:
        return None


def _population(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", "").replace("_", ""))
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return int(round(value))


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
