"""The report as one A4-landscape page: a single plotly figure, laid out in CSS pixels (1123 × 794 at 96 per
inch), that kaleido draws as a vector PDF or as a PNG.

Print style: dark text on white paper, the screen's one status colour language for fills, dots and bars, the
screen's CJK-first font. Top to bottom: the title with the stamp beside it; the unit's key indicators and the
map of its children; the trend, the children ranked and the open alerts; the sources along the foot.
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from cityops.catalog import Direction, Thresholds
from cityops.exports.map_labels import MapFrame, kept_labels, text_width
from cityops.exports.print_style import (ACCENT, FONT_FAMILY, GRID, HEADING_CHAR_WIDTH, INK, LABEL_RANK,
                                          MAP_LABEL_SIZE, MARGIN, MUTED, NO_DATA_OUTLINE, PAGE_HEIGHT, PAGE_WIDTH,
                                          RULE, SOURCES_PER_LINE, SOURCE_LINES, STATUS_ORDER, dot_colour, dot_of,
                                          draw_heading, draw_rule, draw_table, draw_text, label_of, paper_domain,
                                          shortened)
from cityops.exports.report_content import ReportContent
from cityops.exports.stamp import full_time, source_line
from cityops.readings import Reading
from cityops.status import Status
from layouts.text import format_threshold, format_time, format_value, level_name, status_text, t
from layouts.theme import STATUS_COLOURS


def report_figure(content: ReportContent) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(width=PAGE_WIDTH, height=PAGE_HEIGHT, margin=dict(l=0, r=0, t=0, b=0),
                         paper_bgcolor="#ffffff", plot_bgcolor="#ffffff", showlegend=False,
                         font=dict(family=FONT_FAMILY, color=INK, size=10))
    _head(figure, content)
    _kpis(figure, content, (MARGIN, 104, 500, 336))
    _map(figure, content, (MARGIN + 524, 104, PAGE_WIDTH - 2 * MARGIN - 524, 336))
    _trend(figure, content, (MARGIN, 458, 372, 282))
    _ranking(figure, content, (MARGIN + 394, 458, 300, 282))
    _alerts(figure, content, (MARGIN + 716, 458, PAGE_WIDTH - 2 * MARGIN - 716, 282))
    _foot(figure, content)
    return figure


def _head(figure: go.Figure, content: ReportContent) -> None:
    language, stamp = content.language, content.stamp
    draw_text(figure, MARGIN, 24, f"{content.city_name} · {t('report_title', language)}", size=21, bold=True)
    subtitle = f"{content.unit_name} ({content.unit_code}) · {content.indicator.name(language)}"
    draw_text(figure, MARGIN, 58, subtitle, size=12.5, colour=INK)
    if stamp.time_range:
        draw_text(figure, MARGIN, 76, stamp.time_range, size=10.5, colour=MUTED)
    as_of = full_time(stamp.as_of, stamp.zone) if stamp.as_of else t("no_data", language)
    lines = [
        f"{t('stamp_as_of', language)}  <b>{as_of}</b>",
        f"{t('stamp_exported_at', language)}  {full_time(stamp.exported_at, stamp.zone)} ({stamp.zone})",
        f"{t('stamp_exported_by', language)}  {stamp.actor}",
        f"{t('stamp_scope', language)}  {stamp.scope}",
    ]
    draw_text(figure, PAGE_WIDTH - MARGIN, 24, "<br>".join(lines), size=10.5, colour=INK, anchor="right")
    draw_rule(figure, 94, colour=INK, width=1.2)


def signed(change: float, decimals: int) -> str:
    """+0.2, -1, and 0 (never "+0" or "-0.00") for a change too small to show."""
    shown = round(change, decimals)
    if shown == 0:
        return format_value(0, decimals)
    return ("+" if shown > 0 else "") + format_value(shown, decimals)


def _kpi_row(indicator, reading: Reading, content: ReportContent, day: int) -> list[str]:
    language = content.language
    name = indicator.name(language)  # cut to its column's width by _kpis
    if not reading.measured and reading.owner_id is None:
        return [name, "—", "", t("report_not_measured", language), "", "", ""]
    if reading.owner_id is not None:  # its ancestor's value (a community's AQI is its street's): named
        name = f"{name}（{content.owner_names[reading.owner_id]}）" if language == "zh" \
            else f"{name} ({content.owner_names[reading.owner_id]})"
    value = format_value(reading.value, indicator.decimals)
    # Plain text: <b> markup makes plotly's table rows taller than asked, and the rows must fit the page.
    value = f"{value} {indicator.measure(language)}" if reading.value is not None else "—"
    change = reading.change
    change_text = "" if change is None else signed(change, indicator.decimals)
    reported = "" if reading.expected in (None, 1) else f"{reading.reported:,}/{reading.expected:,}"
    return [name, value, dot_of(reading.status), status_text(reading.status, language), change_text,
            format_time(reading.observed_at, content.zone, day), reported]


def _kpis(figure: go.Figure, content: ReportContent, box: tuple) -> None:
    left, top, width, height = box
    language = content.language
    draw_heading(figure, left, top, t("kpis_of", language, name=content.unit_name))
    # Times of one day other than the export's (a report drawn after midnight) say their date once, in the
    # header: "11-27 23:37" in every row is a column too wide for the page.
    zone = ZoneInfo(content.zone)
    times = [reading.observed_at for _, reading in content.kpis if reading.observed_at]
    days = {datetime.fromtimestamp(moment, zone).date() for moment in times}
    day = times[0] if len(days) == 1 else content.stamp.exported_at
    as_of = t("col_observed_at", language)
    if len(days) == 1 and days != {datetime.fromtimestamp(content.stamp.exported_at, zone).date()}:
        as_of += f" {next(iter(days)).strftime('%m-%d')}"
    rows = [_kpi_row(indicator, reading, content, day) for indicator, reading in content.kpis]
    columns = [list(column) for column in zip(*rows)] if rows else [[] for _ in range(7)]
    dots = [dot_colour(reading.status) for _, reading in content.kpis]
    row_height = max(14, min(20, (height - 24 - 22) / max(1, len(rows))))
    headers = [t("col_indicator", language), t("col_value", language), "", t("col_status", language),
               t("col_change", language), as_of, t("col_reported", language)]
    widths = _fitted_widths(headers, columns, width)
    columns[0] = [_fit(name, widths[0] - CELL_PADDING) for name in columns[0]]
    draw_table(figure, (left, top + 24, width, height - 24), headers, columns, widths,
           ["left", "right", "center", "left", "right", "right", "right"], row_height,
           colours=[INK, INK, dots, INK, INK, MUTED, MUTED])


CELL_PADDING = 16  # px a table cell keeps around its text (plotly's, measured)


def _fitted_widths(headers: list[str], columns: list[list[str]], total: float, size: float = 10) -> list[float]:
    """Each column but the first as wide as its longest text (estimated: cityops/exports/map_labels.py
    text_width), the first (the names, cut to fit by the caller) what is left. A wrapped cell doubles its row and
    the rows must fit the page: values with English units (125,910 people/h) and as-of times of another day had
    wrapped rows and pushed half the table off it."""
    widths = [max([text_width(header, size), *(text_width(str(value), size) for value in column)]) + CELL_PADDING
              for header, column in zip(headers, columns)]
    widths[0] = max(total - sum(widths[1:]), 4 * size + CELL_PADDING)
    return widths


def _fit(text: str, width: float, size: float = 10) -> str:
    """`text` cut with an ellipsis to fit `width` px at `size` px (estimated as for the table's columns)."""
    if text_width(text, size) <= width:
        return text
    kept = ""
    for char in text:
        if text_width(kept + char + "…", size) > width:
            break
        kept += char
    return kept.rstrip() + "…"


def _map(figure: go.Figure, content: ReportContent, box: tuple) -> None:
    left, top, width, height = box
    language = content.language
    level = level_name(content.child_level, language, plural=True) if content.child_level else ""
    draw_heading(figure, left, top, t("map_of", language, indicator=content.indicator.name(language),
                                  unit=content.map_parent_name, level=level))
    status_by_code = dict(zip(content.children["code"], content.children["status"]))
    bounds = [point for rings in content.shapes.values() for ring in rings for point in ring]
    if not bounds:
        draw_text(figure, left + width / 2, top + height / 2, t("no_data", language), colour=MUTED, anchor="center")
        return
    for status in STATUS_ORDER:
        xs, ys = [], []
        for code, rings in content.shapes.items():
            if Status(status_by_code.get(code, Status.NO_DATA.value)) != status:
                continue
            for ring in rings:
                xs += [x for x, _ in ring] + [None]
                ys += [y for _, y in ring] + [None]
        if not xs:
            continue
        no_data = status == Status.NO_DATA
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", fill="toself", hoverinfo="skip", xaxis="x3",
                                    yaxis="y3", fillcolor="#ffffff" if no_data else STATUS_COLOURS[status],
                                    line=dict(color=NO_DATA_OUTLINE if no_data else "#ffffff", width=0.8)))
    selected = content.unit_code
    if selected in content.shapes:  # a community: shown within its street, outlined
        for ring in content.shapes[selected]:
            figure.add_trace(go.Scatter(x=[x for x, _ in ring], y=[y for _, y in ring], mode="lines", xaxis="x3",
                                        yaxis="y3", hoverinfo="skip", line=dict(color=INK, width=2.2)))
    xs = [x for x, _ in bounds]
    ys = [y for _, y in bounds]
    latitude = (min(ys) + max(ys)) / 2
    pad_x, pad_y = (max(xs) - min(xs)) * 0.02 or 0.01, (max(ys) - min(ys)) * 0.02 or 0.01
    x_range, y_range = (min(xs) - pad_x, max(xs) + pad_x), (min(ys) - pad_y, max(ys) + pad_y)
    ratio = 1 / max(0.2, math.cos(math.radians(latitude)))
    map_px = (left, top + 24, width, height - 24 - 22)
    map_box = paper_domain(*map_px)
    figure.update_layout(
        xaxis3=dict(domain=map_box["x"], range=list(x_range), visible=False, constrain="domain", anchor="y3"),
        yaxis3=dict(domain=map_box["y"], range=list(y_range), visible=False, scaleanchor="x3", scaleratio=ratio,
                    constrain="domain", anchor="x3"))
    _map_labels(figure, content, status_by_code, MapFrame.fit(map_px, x_range, y_range, ratio))
    draw_text(figure, left, top + height - 14, _legend(content), size=9.5, colour=MUTED)


def _map_labels(figure: go.Figure, content: ReportContent, status_by_code: dict, frame: MapFrame) -> None:
    """The children's names that fit without covering one another: the worst status first, then the larger unit
    (cityops/exports/map_labels.py)."""
    name_column = "name_zh" if content.language == "zh" else "name_en"
    names = dict(zip(content.children["code"], content.children[name_column]))
    texts = {code: label_of(names.get(code, code)) for code in content.centres}
    rank = {code: (LABEL_RANK.get(Status(status_by_code.get(code, Status.NO_DATA.value)), 0),
                   sum(_ring_area(ring) for ring in content.shapes.get(code, ())))
            for code in content.centres}
    codes = kept_labels(content.centres, texts, rank, frame, MAP_LABEL_SIZE)
    figure.add_trace(go.Scatter(
        x=[content.centres[c][0] for c in codes], y=[content.centres[c][1] for c in codes], mode="text",
        text=[texts[c] for c in codes], xaxis="x3", yaxis="y3", hoverinfo="skip",
        textfont=dict(size=MAP_LABEL_SIZE, color=INK, family=FONT_FAMILY)))


def _not_measured_below(content: ReportContent) -> bool:
    """Whether the units on the map (the children) are below the level the indicator is measured at."""
    return content.child_level is not None and not content.indicator.measured_at_or_above(content.child_level)


def _ring_area(ring: list[tuple[float, float]]) -> float:
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]))) / 2


def _legend(content: ReportContent) -> str:
    language = content.language
    if _not_measured_below(content):  # every unit would read "no data": the legend says why, as on the screen
        return t("map_not_measured", language, level=level_name(content.child_level, language),
                 measured=level_name(content.indicator.level, language))
    chips = [f'<span style="color:{NO_DATA_OUTLINE if s == Status.NO_DATA else STATUS_COLOURS[s]}">'
             f'{"□" if s == Status.NO_DATA else "■"}</span> {status_text(s, language)}' for s in STATUS_ORDER]
    text = "   ".join(chips)
    thresholds = content.indicator.thresholds_at(content.child_level) if content.child_level else None
    if thresholds is not None:
        sign = "≥" if content.indicator.direction == Direction.HIGHER_IS_WORSE else "≤"
        decimals = content.indicator.decimals
        text += (f"      {t('threshold_warning', language)} {sign} {format_threshold(thresholds.warning, decimals)}"
                 f" · {t('threshold_critical', language)} {sign} {format_threshold(thresholds.critical, decimals)}"
                 f" {content.indicator.measure(language)}")
    return text


def _trend(figure: go.Figure, content: ReportContent, box: tuple) -> None:
    left, top, width, height = box
    language, indicator = content.language, content.indicator
    heading = t("report_trend", language, indicator=indicator.name(language))
    if content.trend_unit_name != content.unit_name:  # measured above the unit: whose trend it is
        heading += f" · {content.trend_unit_name}"
    draw_heading(figure, left, top, heading)
    zone = ZoneInfo(content.zone)
    times = [datetime.fromtimestamp(int(at), zone).replace(tzinfo=None) for at in content.series["time"]]
    values = [None if v is None or v != v else float(v) for v in content.series["value"]]
    start, end = (datetime.fromtimestamp(edge, zone).replace(tzinfo=None) for edge in content.window)
    figure.add_trace(go.Scatter(x=times, y=values, mode="lines", line=dict(color=ACCENT, width=1.6),
                                connectgaps=False, hoverinfo="skip", xaxis="x", yaxis="y"))
    shown = [v for v in values if v is not None]
    if content.thresholds is not None:
        _threshold_lines(figure, content.thresholds, indicator.direction, shown, language)
    if not shown:
        # As the screen's trend says it: a viewer who may see the community only has no street's trend to see.
        empty = t("no_data", language) if content.trend_measured else \
            t("not_measured", language, level=level_name(content.level, language))
        draw_text(figure, left + width / 2, top + height / 2, empty, colour=MUTED, anchor="center")
    plot = paper_domain(left + 40, top + 26, width - 40, height - 26 - 20)  # room for the tick labels below
    day_or_less = content.window[1] - content.window[0] <= 86400
    figure.update_layout(
        xaxis=dict(domain=plot["x"], anchor="y", range=[start, end], gridcolor=GRID, linecolor=RULE,
                   tickfont=dict(size=9, color=MUTED), tickformat="%H:%M" if day_or_less else "%m-%d", nticks=8,
                   zeroline=False),
        yaxis=dict(domain=plot["y"], anchor="x", gridcolor=GRID, linecolor=RULE, zeroline=False,
                   tickfont=dict(size=9, color=MUTED), automargin=False,
                   title=dict(text=indicator.measure(language), font=dict(size=9, color=MUTED), standoff=4)))


def _threshold_lines(figure: go.Figure, thresholds: Thresholds, direction: Direction, values: list[float],
                     language: str) -> None:
    top = max([*values, thresholds.critical]) * 1.06
    bottom = min([*values, thresholds.critical]) * 0.94
    worse = direction == Direction.HIGHER_IS_WORSE
    bands = ((thresholds.warning, thresholds.critical, Status.WARNING),
             (thresholds.critical, top if worse else bottom, Status.CRITICAL))
    for low, high, status in bands:
        figure.add_shape(type="rect", xref="x domain", yref="y", x0=0, x1=1, y0=low, y1=high, line_width=0,
                         fillcolor=STATUS_COLOURS[status], opacity=0.08, layer="below")
    for line, status in ((thresholds.warning, Status.WARNING), (thresholds.critical, Status.CRITICAL)):
        figure.add_shape(type="line", xref="x domain", yref="y", x0=0, x1=1, y0=line, y1=line,
                         line=dict(color=STATUS_COLOURS[status], width=1.1, dash="dot"))
        figure.add_annotation(xref="x domain", yref="y", x=0.005, y=line, xanchor="left", yanchor="bottom",
                              text=t("threshold_" + status.value, language), showarrow=False,
                              font=dict(size=8.5, color=STATUS_COLOURS[status]))


def _ranking(figure: go.Figure, content: ReportContent, box: tuple) -> None:
    left, top, width, height = box
    language, indicator = content.language, content.indicator
    level = level_name(content.child_level, language, plural=True) if content.child_level else ""
    heading = t("report_ranked", language, level=level)  # the indicator is the page's
    if _not_measured_below(content):
        draw_heading(figure, left, top, shortened(heading, int(width / HEADING_CHAR_WIDTH)))
        draw_text(figure, left + width / 2, top + height / 2,
              t("not_measured", language, level=level_name(content.child_level, language)), colour=MUTED,
              anchor="center")
        figure.update_layout(xaxis2=dict(visible=False), yaxis2=dict(visible=False))
        return
    if content.child_count > len(content.ranked):
        heading += " · " + t("report_worst_of", language, n=len(content.ranked), m=content.child_count)
    draw_heading(figure, left, top, shortened(heading, int(width / HEADING_CHAR_WIDTH)))
    ranked = content.ranked
    if ranked.empty:
        draw_text(figure, left + width / 2, top + height / 2, t("no_data", language), colour=MUTED, anchor="center")
        figure.update_layout(xaxis2=dict(visible=False), yaxis2=dict(visible=False))
        return
    names = [label_of(n) for n in ranked["name_zh" if language == "zh" else "name_en"]]
    values = ranked["value"].astype(float).tolist()
    figure.add_trace(go.Bar(
        x=values, y=names, orientation="h", xaxis="x2", yaxis="y2", hoverinfo="skip",
        marker=dict(color=[STATUS_COLOURS[Status(s)] for s in ranked["status"]], line_width=0),
        text=[format_value(v, indicator.decimals) for v in values], textposition="outside", cliponaxis=False,
        textfont=dict(size=9, color=INK)))
    plot = paper_domain(left + 92, top + 26, width - 92 - 34, height - 26)
    figure.update_layout(
        bargap=0.28,
        xaxis2=dict(domain=plot["x"], anchor="y2", gridcolor=GRID, zeroline=False, linecolor=RULE,
                    tickfont=dict(size=9, color=MUTED), nticks=5, rangemode="tozero"),
        yaxis2=dict(domain=plot["y"], anchor="x2", autorange="reversed", tickfont=dict(size=9.5, color=INK),
                    showgrid=False, linecolor=RULE, automargin=False))


def _alerts(figure: go.Figure, content: ReportContent, box: tuple) -> None:
    left, top, width, height = box
    language = content.language
    title = t("alerts_of", language, unit=content.unit_name) + " · " + t("alerts_open", language, n=content.open_alerts)
    if content.overdue_alerts:
        title += " · " + t("alerts_overdue", language, n=content.overdue_alerts)
    draw_heading(figure, left, top, shortened(title, int(width / HEADING_CHAR_WIDTH)))
    alerts = content.alerts
    if alerts.empty:
        draw_text(figure, left + 12, top + 34, t("no_open_alerts", language, unit=content.unit_name), colour=MUTED)
        return
    names = content.indicator_names
    name_column = "name_zh" if language == "zh" else "name_en"
    severities = {"warning": Status.WARNING, "critical": Status.CRITICAL}
    columns: list[list[str]] = [[], [], [], [], []]
    dots, times = [], []
    for row in alerts.itertuples(index=False):
        columns[0].append("●")
        dots.append(STATUS_COLOURS[severities.get(row.severity, Status.WARNING)])
        severity = t(row.severity, language) if row.severity in severities else str(row.severity)
        columns[1].append(severity)
        columns[2].append(shortened(getattr(row, name_column), 17))  # the level word kept: rows mix levels
        what = names.get(row.indicator, row.indicator) if isinstance(row.indicator, str) else (row.source or row.rule)
        columns[3].append(shortened(what, 20))
        columns[4].append(format_time(row.fired_at or row.started_at, content.zone, content.stamp.exported_at))
        times.append(STATUS_COLOURS[Status.CRITICAL] if row.overdue else INK)
    headers = ["", t("col_severity", language), t("col_name", language), t("col_indicator", language),
               t("report_since", language)]
    row_height = max(14, min(19, (height - 26 - 22 - 16) / len(alerts)))
    draw_table(figure, (left, top + 24, width, height - 24 - 16), headers, columns, [14, 46, 96, 118, 50],
           ["center", "left", "left", "left", "right"], row_height, colours=[dots, INK, INK, INK, times])
    if content.open_alerts > len(alerts):
        draw_text(figure, left, top + height - 12, t("report_more_alerts", language, n=content.open_alerts - len(alerts)),
              size=9, colour=MUTED)


def _foot(figure: go.Figure, content: ReportContent) -> None:
    language, stamp = content.language, content.stamp
    draw_rule(figure, PAGE_HEIGHT - 46)
    sources = [source_line(source, stamp.zone, language) for source in stamp.sources]
    shown = sources[:SOURCES_PER_LINE * SOURCE_LINES]
    if len(sources) > len(shown):
        shown.append(t("report_more_sources", language, n=len(sources) - len(shown)))
    lines = [" · ".join(shown[i:i + SOURCES_PER_LINE]) for i in range(0, len(shown), SOURCES_PER_LINE)]
    listed = "<br>".join(lines) if lines else t("report_no_sources", language)
    text = f"<b>{t('stamp_source', language)}</b>  {listed}"
    draw_text(figure, MARGIN, PAGE_HEIGHT - 40, text, size=9.5, colour=MUTED)
    draw_text(figure, PAGE_WIDTH - MARGIN, PAGE_HEIGHT - 40, t("report_footer", language), size=9.5, colour=MUTED,
          anchor="right")

