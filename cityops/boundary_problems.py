"""What a boundary import finds wrong, and the features it is about.

Every stage of `cityops.boundary_import` reports into one `_Problems` list, in reading order, and the import
raises them together as ONE `BoundaryImportError`, so a data steward can fix a file in one pass. `_Feature`
is a feature as the stages see it: what was read, what the tree resolved, and whether a problem was already
reported for it (later checks then leave it alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shapely.geometry.base import BaseGeometry

from cityops.hierarchy import Level

# How many problems one error lists; the rest are counted.
MAX_LISTED_PROBLEMS = 20


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
