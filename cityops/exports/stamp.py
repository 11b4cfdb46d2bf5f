"""The stamp every export carries: what it is, of which unit and scope, from data as of when and from which
sources (each with its last success), when it was exported and by whom — so a number pasted into a briefing
can be traced back. XLSX files carry it as a sheet, reports print it; CSV files stay pure data (their name
tells unit, indicator and time) and the `exports` table keeps the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cityops.exports.panel_data import ExportContext
from cityops.sources import SourceHealth, source_health
from cityops.time_range import TimeRange
from layouts.text import freshness_text, t


@dataclass(frozen=True)
class Stamp:
    content: str                  # what was exported, in words ("关键指标", "Report")
    unit: str                     # "浦东新区 (310115)"
    scope: str                    # the exporter's scope, the same way
    indicator: str | None         # "12345热线投诉 (hotline_complaints)"; None when the export covers them all
    time_range: str | None        # "近7天 · 2026-11-19 10:30 – 2026-11-26 10:30"
    as_of: int | None             # the newest time in the data
    exported_at: int
    actor: str
    sources: tuple[SourceHealth, ...]
    zone: str
    language: str

    def rows(self, data_rows: int | None = None) -> list[tuple[str, str]]:
        """(label, text) pairs in the exporter's language: the stamp sheet of an XLSX, the report's stamp."""
        language = self.language
        rows = [(t("stamp_content", language), self.content), (t("stamp_unit", language), self.unit)]
        if self.indicator:
            rows.append((t("stamp_indicator", language), self.indicator))
        if self.time_range:
            rows.append((t("stamp_time_range", language), self.time_range))
        rows += [
            (t("stamp_as_of", language), full_time(self.as_of, self.zone) if self.as_of else t("no_data", language)),
            (t("stamp_exported_at", language), f"{full_time(self.exported_at, self.zone)} ({self.zone})"),
            (t("stamp_exported_by", language), self.actor),
            (t("stamp_scope", language), self.scope),
        ]
        if data_rows is not None:
            rows.append((t("stamp_rows", language), f"{data_rows:,}"))
        rows += [(t("stamp_source", language), source_line(source, self.zone, language)) for source in self.sources]
        return rows


def full_time(epoch: int | None, zone: str) -> str:
    """2026-11-26 10:30: what a stamp says (unlike the screen's HH:MM, a file outlives the day)."""
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(int(epoch), ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def source_line(source: SourceHealth, zone: str, language: str) -> str:
    return t("stamp_source_line", language, name=source.name,
             time=full_time(source.last_success, zone) if source.last_success else t("never", language),
             state=freshness_text(source.freshness, language))


def range_text(time_range: TimeRange, zone: str, language: str) -> str:
    """The time range in words and as its two ends: "近7天 · 2026-11-19 10:30 – 2026-11-26 10:30"."""
    if time_range.key == "custom" and time_range.first_day and time_range.last_day:
        name = t("range_custom", language, start=time_range.first_day.isoformat(),
                 end=time_range.last_day.isoformat())
    else:
        name = t(f"range_{time_range.key}", language)
    return f"{name} · {full_time(time_range.start, zone)} – {full_time(time_range.end, zone)}"


def unit_label(context: ExportContext, unit_id: int) -> str:
    return f"{context.unit_name(unit_id)} ({context.unit_code(unit_id)})"


def make_stamp(context: ExportContext, *, content: str, unit_id: int, indicator_key: str | None,
               time_range: TimeRange | None, as_of: int | None, actor: str,
               connector_intervals: dict[str, int]) -> Stamp:
    """The stamp of one export, read now: the configured sources' last successes come from their runs."""
    indicator = None
    if indicator_key is not None:
        indicator = f"{context.catalog[indicator_key].name(context.language)} ({indicator_key})"
    return Stamp(
        content=content, unit=unit_label(context, unit_id), scope=unit_label(context, context.scope.root_id),
        indicator=indicator,
        time_range=range_text(time_range, context.zone, context.language) if time_range is not None else None,
        as_of=as_of, exported_at=context.now, actor=actor,
        sources=tuple(source_health(context.session, connector_intervals, context.now)),
        zone=context.zone, language=context.language)
