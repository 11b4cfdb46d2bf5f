"""Finding a unit by name (Chinese or English, any part of it, any case) or by the start of its code, within the
viewer's scope. The header's search box asks this on every keystroke, over ~6,200 units at demo scale.

The names are normalised once per loaded tree (`unit_index`), so a query costs one pass over plain Python
strings (1–2 ms at demo scale) and never a database read.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import pandas as pd

from cityops.hierarchy import Level
from cityops.scope import Scope
from cityops.tree import UnitTree

# How a unit matched, best first: results are ordered by it, then by level (a district before its communities).
EXACT_CODE, CODE_PREFIX, EXACT_NAME, NAME_START, NAME_PART = range(5)
LONGEST_QUERY = 60


def normalised(text: str) -> str:
    """What a query and a name are compared as: full-width forms folded (ＡＢ１ → ab1, as Chinese input methods
    type them), case folded, runs of blanks made one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True)
class FoundUnit:
    """One search result: enough to show it (name, level, parent) and to select it (code)."""

    code: str
    name_zh: str
    name_en: str
    level: Level
    parent_name_zh: str | None
    parent_name_en: str | None
    match: int

    def name(self, language: str) -> str:
        return self.name_zh if language == "zh" else self.name_en

    def parent_name(self, language: str) -> str | None:
        return self.parent_name_zh if language == "zh" else self.parent_name_en


@dataclass(frozen=True)
class UnitIndex:
    """Every unit of a tree as plain Python values in tree order: its search keys (code, names, folded) and what a
    result shows (names as they are, level, parent), so a search touches no pandas object."""

    tree: UnitTree
    ids: list[int]
    lft: list[int]
    levels: list[int]
    codes: list[str]
    names_zh: list[str]
    names_en: list[str]
    parents: list[int | None]
    keys: list[tuple[str, str, str]]  # (code, name_zh, name_en) folded by `normalised`
    position: dict[int, int]          # unit id → its place in these lists

    @classmethod
    def of(cls, tree: UnitTree) -> "UnitIndex":
        frame = tree.frame
        codes = [str(code) for code in frame["code"].tolist()]
        names_zh = [str(name) for name in frame["name_zh"].tolist()]
        names_en = [str(name) for name in frame["name_en"].tolist()]
        parents = [None if pd.isna(parent) else int(parent) for parent in frame["parent_id"].tolist()]
        ids = [int(unit_id) for unit_id in frame.index.tolist()]
        keys = [(normalised(code), normalised(zh), normalised(en)) for code, zh, en in zip(codes, names_zh, names_en)]
        return cls(tree, ids, [int(v) for v in frame["lft"].tolist()], [int(v) for v in frame["level"].tolist()],
                   codes, names_zh, names_en, parents, keys, {unit_id: place for place, unit_id in enumerate(ids)})

    def matches(self, query: str, scope: Scope) -> list[tuple[int, int, int, str, int]]:
        """(match kind, level, name length, code, place) of every unit in `scope` that `query` finds."""
        found = []
        lowest, highest = scope.lft, scope.rgt
        for place, (code, name_zh, name_en) in enumerate(self.keys):
            if code == query:
                kind = EXACT_CODE
            elif code.startswith(query):
                kind = CODE_PREFIX
            elif query == name_zh or query == name_en:
                kind = EXACT_NAME
            elif name_zh.startswith(query) or name_en.startswith(query):
                kind = NAME_START
            elif query in name_zh or query in name_en:
                kind = NAME_PART
            else:
                continue
            if lowest <= self.lft[place] <= highest:
                found.append((kind, self.levels[place], len(name_zh), code, place))
        return found

    def found(self, place: int, kind: int, scope: Scope) -> "FoundUnit":
        parent = self.parents[place]
        # The parent is named only when the viewer may see it too (as in the breadcrumb).
        parent_place = self.position.get(parent) if parent is not None else None
        if parent_place is not None and not scope.lft <= self.lft[parent_place] <= scope.rgt:
            parent_place = None
        return FoundUnit(self.codes[place], self.names_zh[place], self.names_en[place], Level(self.levels[place]),
                         None if parent_place is None else self.names_zh[parent_place],
                         None if parent_place is None else self.names_en[parent_place], kind)


_latest: list[UnitIndex] = []


def unit_index(tree: UnitTree) -> UnitIndex:
    """The index of `tree`, built once per loaded tree (load_tree returns the same tree until the units change)."""
    if _latest and _latest[0].tree is tree:
        return _latest[0]
    index = UnitIndex.of(tree)
    _latest[:] = [index]
    return index


@dataclass(frozen=True)
class SearchResult:
    units: list[FoundUnit]
    total: int  # how many units matched, of which `units` are the best


def search_units(tree: UnitTree, scope: Scope, query: str | None, limit: int = 8) -> SearchResult:
    """The units within `scope` whose code starts with `query` or whose Chinese or English name contains it,
    best first: exact code, code prefix, exact name, name start, any part of the name; then higher levels
    first, shorter names, codes. A blank (or non-text) query finds nothing."""
    text = normalised(query)[:LONGEST_QUERY] if isinstance(query, str) else ""
    if not text:
        return SearchResult([], 0)
    index = unit_index(tree)
    found = sorted(index.matches(text, scope))
    return SearchResult([index.found(place, kind, scope) for kind, _level, _length, _code, place in found[:limit]],
                        len(found))
