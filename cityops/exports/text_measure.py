"""How wide text is set, where no browser is at hand to measure it (PDF and PNG layouts, XLSX columns): a CJK
character is a full em (two columns of a fixed-width grid), a Latin letter or digit about half that."""

from __future__ import annotations

WIDE_FROM = 0x2E80  # CJK radicals onward (ideographs, kana, full-width forms)


def is_wide(char: str) -> bool:
    return ord(char) > WIDE_FROM


def columns(text: str) -> int:
    """Columns `text` takes on a fixed-width grid (CJK characters count two)."""
    return sum(2 if is_wide(char) else 1 for char in text)
