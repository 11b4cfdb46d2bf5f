"""The administrative hierarchy: city → district → street (town) → community (village)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from shapely.geometry.base import BaseGeometry


class Level(IntEnum):
    CITY = 0
    DISTRICT = 1
    STREET = 2
    COMMUNITY = 3

    @property
    def label_en(self) -> str:
        return _LABELS[self][1]

    @property
    def label_zh(self) -> str:
        return _LABELS[self][0]

    @property
    def child(self) -> "Level | None":
        return Level(self + 1) if self < Level.COMMUNITY else None

    @classmethod
    def parse(cls, text: str | int) -> "Level":
        if isinstance(text, int):
            return cls(text)
        name = str(text).strip().lower()
        for level in cls:
            if name in (level.name.lower(), _LABELS[level][0], _LABELS[level][1].lower()):
                return level
        aliases = {"town": cls.STREET, "village": cls.COMMUNITY, "county": cls.DISTRICT}
        if name in aliases:
            return aliases[name]
        raise ValueError(f"unknown level {text!r}: use city, district, street (town) or community (village)")


_LABELS = {
    Level.CITY: ("市", "City"),
    Level.DISTRICT: ("区", "District"),
    Level.STREET: ("街道/镇", "Street"),
    Level.COMMUNITY: ("社区/村", "Community"),
}

# China's statistical division codes: 6 digits for a county-level district, +3 for a street or town,
# +3 for a community or village. The parent of such a code is its prefix.
STATISTICAL_CODE_LENGTH = {Level.DISTRICT: 6, Level.STREET: 9, Level.COMMUNITY: 12}


def level_of_statistical_code(code: str) -> Level | None:
    """The level a statistical division code denotes, or None if the code is not of that form."""
    if not code.isdigit():
        return None
    for level, length in STATISTICAL_CODE_LENGTH.items():
        if len(code) == length:
            return level
    return None


def parent_of_statistical_code(code: str, city_code: str) -> str | None:
    """The parent code derivable from a statistical code (districts hang from the city)."""
    level = level_of_statistical_code(code)
    if level is None:
        return None
    if level == Level.DISTRICT:
        return city_code
    return code[: STATISTICAL_CODE_LENGTH[Level(level - 1)]]


@dataclass(frozen=True)
class UnitRecord:
    """One administrative unit as loaded from the demo generator or an imported boundary file."""

    code: str
    name_zh: str
    name_en: str
    level: Level
    parent_code: str | None
    population: int
    geometry: BaseGeometry = field(repr=False)
