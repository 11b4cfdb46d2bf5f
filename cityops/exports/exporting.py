"""Taking an export: a panel's data as CSV or XLSX, a chart as PNG or SVG (what the browser needs to draw the
trend it shows, or the ranking drawn here), or a report as PDF or PNG — each named for what it holds and
described for the record (cityops/exports/records.py).

`view` is the selection already checked against `context.scope` (callbacks/exports.py does that from the
request), so everything here reads only what the viewer may see.
"""

from __future__ import annotations

from dataclasses import dataclass

from cityops.exports import CHART_FORMATS, CHART_PANELS, DATA_FORMATS, DATA_PANELS, DRAWN_BY_BROWSER, REPORT_FORMATS
from cityops.exports.files import ExportFile, csv_bytes, export_filename, xlsx_bytes
from cityops.exports.panel_data import ExportContext, ExportView, PanelTable, children_of, panel_table
from cityops.exports.pdf_text import finish_pdf
from cityops.exports.ranking_chart import ranking_figure
from cityops.exports.records import ExportEntry
from cityops.exports.render import render_figure
from cityops.exports.report_content import report_content
from cityops.exports.report_page import PAGE_HEIGHT, PAGE_WIDTH, report_figure
from cityops.exports.stamp import full_time, make_stamp, range_text
from cityops.hierarchy import Level
from cityops.ranking import ranked_children
from layouts.text import level_name, t

# A report PNG is 2× the page (2246 × 1588): sharp on a 4K wall or in a printed briefing.
REPORT_PNG_WIDTH = 2 * PAGE_WIDTH
MAX_PNG_WIDTH = 6000
# Chart images: large enough for a slide.
CHART_SIZE = {"trend": (1600, 900), "ranking": (1200, 900)}


def selection_of(context: ExportContext, view: ExportView) -> dict:
    """The checked selection as recorded: the unit and indicator really exported, and the time range."""
    time_range = view.time_range
    return {"unit": context.unit_code(view.unit_id), "indicator": view.indicator_key, "range": time_range.key,
            "start": time_range.start, "end": time_range.end}


def entry_for(context: ExportContext, view: ExportView, panel: str, fmt: str, actor: str, unit_id: int,
              indicator_key: str | None, rows: int | None, size: int | None, filename: str) -> ExportEntry:
    return ExportEntry(actor=actor, panel=panel, format=fmt, scope_code=context.scope.root_code,
                       unit_code=context.unit_code(unit_id), indicator=indicator_key,
                       selection=selection_of(context, view), rows=rows, size=size, filename=filename,
                       language=context.language)


def _panel_stamp(context: ExportContext, view: ExportView, table: PanelTable, actor: str,
                 connector_intervals: dict[str, int]):
    return make_stamp(context, content=t(f"export_panel_{table.panel}", context.language), unit_id=table.unit_id,
                      indicator_key=table.indicator_key,
                      time_range=view.time_range if table.panel == "trend" else None, as_of=table.as_of,
                      actor=actor, connector_intervals=connector_intervals)


def panel_file(context: ExportContext, view: ExportView, panel: str, fmt: str, *, actor: str,
               connector_intervals: dict[str, int]) -> tuple[ExportFile, ExportEntry]:
    """The data behind one panel as CSV or XLSX, and its record."""
    if panel not in DATA_PANELS or fmt not in DATA_FORMATS:
        raise ValueError(f"cannot export {panel!r} as {fmt!r}")
    table = panel_table(context, view, panel)
    filename = export_filename(panel, context.unit_code(table.unit_id), table.indicator_key, context.now,
                               context.zone, fmt)
    if fmt == "csv":
        content = csv_bytes(table.frame)
    else:
        stamp = _panel_stamp(context, view, table, actor, connector_intervals)
        content = xlsx_bytes(table.frame, stamp.rows(table.rows), t("sheet_data", context.language),
                             t("sheet_stamp", context.language))
    exported = ExportFile(content, filename, fmt, table.rows)
    return exported, entry_for(context, view, panel, fmt, actor, table.unit_id, table.indicator_key, table.rows,
                               exported.size, filename)


@dataclass(frozen=True)
class ChartRequest:
    """What the browser needs to draw a chart as an image: the file's name, the title and the stamp line
    printed on it, and its size in pixels."""

    panel: str
    format: str
    filename: str
    title: str
    footnote: str
    width: int
    height: int

    def as_dict(self) -> dict:
        return {"panel": self.panel, "format": self.format, "filename": self.filename, "title": self.title,
                "footnote": self.footnote, "width": self.width, "height": self.height}


def _chart_words(context: ExportContext, view: ExportView, table: PanelTable, actor: str,
                 city_name: str) -> tuple[str, str]:
    """(title, footnote) printed on a chart image: what it shows, where and over which range; the city, the data's
    as-of time, when and by whom it was exported."""
    language = context.language
    indicator = context.catalog[view.indicator_key]
    if table.panel == "trend":
        title = f"{indicator.name(language)} · {context.unit_name(table.unit_id)}"
        subtitle = range_text(view.time_range, context.zone, language)
    else:
        level = Level(int(context.tree.frame.at[table.unit_id, "level"])).child
        level_words = level_name(level, language, plural=True) if level is not None else ""
        title = t("export_ranked_title", language, indicator=indicator.name(language), level=level_words)
        subtitle = f"{context.unit_name(table.unit_id)} ({context.unit_code(table.unit_id)})"
    as_of = full_time(table.as_of, context.zone) if table.as_of else t("no_data", language)
    footnote = " · ".join([city_name, f"{t('stamp_as_of', language)} {as_of}",
                           f"{t('stamp_exported_at', language)} {full_time(context.now, context.zone)}",
                           f"{t('stamp_exported_by', language)} {actor}", "OneScreen"])
    return f"{title}<br><sup>{subtitle}</sup>", footnote


def chart_request(context: ExportContext, view: ExportView, panel: str, fmt: str, *, actor: str,
                  city_name: str) -> tuple[ChartRequest, ExportEntry]:
    """A chart image to be drawn by the browser (from the figure it shows), and its record: the rows are those
    of the chart's data; the size is the browser's to know."""
    if panel not in DRAWN_BY_BROWSER or fmt not in CHART_FORMATS:
        raise ValueError(f"the browser does not draw {panel!r} as {fmt!r}")
    table = panel_table(context, view, panel)
    title, footnote = _chart_words(context, view, table, actor, city_name)
    filename = export_filename(panel, context.unit_code(table.unit_id), view.indicator_key, context.now,
                               context.zone, fmt)
    width, height = CHART_SIZE[panel]
    request = ChartRequest(panel, fmt, filename, title, footnote, width, height)
    return request, entry_for(context, view, panel, fmt, actor, table.unit_id, view.indicator_key, table.rows,
                              None, filename)


def chart_file(context: ExportContext, view: ExportView, panel: str, fmt: str, *, actor: str,
               city_name: str) -> tuple[ExportFile, ExportEntry]:
    """A chart image drawn on the server: the children ranked, as bars (see ranking_chart.py)."""
    if panel not in CHART_PANELS or panel in DRAWN_BY_BROWSER or fmt not in CHART_FORMATS:
        raise ValueError(f"the server does not draw {panel!r} as {fmt!r}")
    table = panel_table(context, view, panel)
    title, footnote = _chart_words(context, view, table, actor, city_name)
    indicator = context.catalog[view.indicator_key]
    ranked = ranked_children(children_of(context, view), indicator)
    width, height = CHART_SIZE[panel]
    figure = ranking_figure(ranked, indicator, title=title, footnote=footnote, language=context.language,
                            width=width, height=height)
    drawn = render_figure(figure, fmt, width, height)
    filename = export_filename(panel, context.unit_code(table.unit_id), view.indicator_key, context.now,
                               context.zone, fmt)
    exported = ExportFile(drawn, filename, fmt, table.rows)
    return exported, entry_for(context, view, panel, fmt, actor, table.unit_id, view.indicator_key, table.rows,
                               exported.size, filename)


def report_file(context: ExportContext, view: ExportView, fmt: str, *, actor: str, city_name: str,
                connector_intervals: dict[str, int],
                png_width: int = REPORT_PNG_WIDTH) -> tuple[ExportFile, ExportEntry]:
    """The report of `view` drawn on the server: a one-page A4-landscape PDF, or a PNG `png_width` pixels wide
    (and √2 less tall, the page's shape)."""
    if fmt not in REPORT_FORMATS:
        raise ValueError(f"a report is {' or '.join(REPORT_FORMATS)}, not {fmt!r}")
    if not 200 <= int(png_width) <= MAX_PNG_WIDTH:
        raise ValueError(f"a report PNG is 200 to {MAX_PNG_WIDTH} pixels wide, not {png_width}")
    content = report_content(context, view, city_name=city_name, actor=actor,
                             connector_intervals=connector_intervals)
    figure = report_figure(content)
    scale = 1.0 if fmt == "pdf" else int(png_width) / PAGE_WIDTH
    drawn = render_figure(figure, fmt, PAGE_WIDTH, PAGE_HEIGHT, scale)
    if fmt == "pdf":
        language = context.language
        title = f"{city_name} · {t('report_title', language)} · {content.unit_name} ({content.unit_code})"
        subject = " · ".join(f"{label} {text}" for label, text in content.stamp.rows()[2:6])
        drawn = finish_pdf(drawn, title=title, author=actor, subject=subject, created=context.now)
    filename = export_filename("report", content.unit_code, view.indicator_key, context.now, context.zone, fmt)
    exported = ExportFile(drawn, filename, fmt, None)
    return exported, entry_for(context, view, "report", fmt, actor, view.unit_id, view.indicator_key, None,
                               exported.size, filename)
