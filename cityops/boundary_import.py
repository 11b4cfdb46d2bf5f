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

This module holds the public API and stage 1 for the properties; a feature's geometry is read in
`cityops.boundary_geometry`, stages 2 and 3 run in `cityops.boundary_checks`, and the problem list behind
`BoundaryImportError` lives in `cityops.boundary_problems`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from shapely.errors import GEOSException
from tqdm import tqdm

from cityops.boundaries import HierarchyError, replace_units
from cityops.boundary_checks import _build_tree, _check_containment, _synthesise_city
from cityops.boundary_geometry import _FIX_GEOMETRY, _check_geometries, _shape
# BoundaryImportError and MAX_LISTED_PROBLEMS are part of this module's API; they live with the problem list.
from cityops.boundary_problems import MAX_LISTED_PROBLEMS, BoundaryImportError, _Feature, _Problems
from cityops.db import migrate, session_scope
from cityops.hierarchy import Level, UnitRecord
from cityops.settings import Settings

# Column widths of the units table (models.Unit): longer values would fail on PostgreSQL.
MAX_CODE_LENGTH = 32
MAX_NAME_LENGTH = 120

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
