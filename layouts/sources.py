"""The sources panel: every connector's freshness, last run and rejected records, and a drill-in to its last
error and quarantined records. Pure builders: the data comes from cityops.sources."""

from __future__ import annotations

import json

from dash import dcc, html

from cityops.sources import QuarantinedRow, RunInfo, SourceStatus
from cityops.status import Status
from layouts.ids import SourceIds, source_row_id
from layouts.text import (error_family_text, format_duration, format_time, format_value, freshness_text, level_name,
                          run_status_text, t)

FRESHNESS_STATUS = {"fresh": Status.NORMAL, "late": Status.WARNING, "silent": Status.CRITICAL}
RAW_EXCERPT = 400


def sources_panel(language: str) -> html.Aside:
    """The drawer's shell; hidden until the header's source summary is clicked."""
    return html.Aside(id=SourceIds.PANEL, className="sources-panel", hidden=True,
                      **{"aria-label": t("sources_title", language)}, children=[
        html.Div(className="sources-panel-head", children=[
            html.H2(t("sources_title", language), className="panel-title"),
            html.Button("×", id=SourceIds.CLOSE, className="sources-close", title=t("close", language),
                        **{"aria-label": t("close", language)}),
        ]),
        dcc.Store(id=SourceIds.SELECTED),
        html.Div(id=SourceIds.BODY, className="sources-body"),
    ])


def source_table(statuses: list[SourceStatus], selected: str | None, language: str, zone: str,
                 now: int) -> html.Div:
    header = html.Div(className="source-row source-row-head", children=[
        html.Span(t(key, language)) for key in ("source", "last_success", "schedule", "last_run", "rejected_24h",
                                                 "open_quarantine")])
    return html.Div(className="source-table", role="table", children=[
        header, *(_row(status, status.config.name == selected, language, zone, now) for status in statuses)])


def _row(status: SourceStatus, selected: bool, language: str, zone: str, now: int) -> html.Button:
    source = status.config
    state = FRESHNESS_STATUS[status.freshness]
    levels = " · ".join(level_name(level, language) for level in source.levels)
    schedule = f"cron {source.cron}" if source.cron else t("every", language,
                                                           duration=format_duration(source.interval_seconds, language))
    run = status.last_run
    ago = (f" · {format_duration(max(0, now - status.last_success), language)}"
           f"{'前' if language == 'zh' else ' ago'}") if status.last_success else ""
    return html.Button(
        id=source_row_id(source.name), n_clicks=0, role="row",
        className=f"source-row status-{state.value}{' selected' if selected else ''}"
                  f"{' failing' if status.failing else ''}",
        **{"data-source": source.name, "data-freshness": status.freshness}, children=[
            html.Span(className="source-name", children=[
                html.Span(freshness_text(status.freshness, language), className=f"badge badge-{state.value}"),
                html.Span(source.name, className="name"),
                html.Span(f"{source.type} · {levels}", className="meta"),
            ]),
            html.Span([format_time(status.last_success, zone, now), html.Span(ago, className="meta")]),
            html.Span(schedule),
            html.Span(_run_text(run, language, zone, now)),
            html.Span(format_value(status.rejected_recently, 0),
                      className="number warn" if status.rejected_recently else "number"),
            html.Span(format_value(status.open_quarantine, 0),
                      className="number warn" if status.open_quarantine else "number"),
        ])


def _run_text(run: RunInfo | None, language: str, zone: str, now: int) -> list:
    if run is None:
        return [t("never", language)]
    counts = t("run_counts", language, accepted=format_value(run.accepted, 0),
               rejected=format_value(run.rejected, 0), duplicates=format_value(run.duplicates, 0))
    return [html.Span(run_status_text(run.status, language), className=f"run-status run-{run.status}"),
            f" {format_time(run.started_at, zone, now)} · {counts}"]


def source_detail(status: SourceStatus, failure: RunInfo | None, records: list[QuarantinedRow] | None,
                  language: str, zone: str, now: int) -> html.Section:
    """The drill-in: the last error in full, and the quarantined records with their reasons and raw rows.
    `records` None: the viewer may not see raw records (they can hold what citizens reported)."""
    if failure is None:
        error = html.P(t("no_error", language), className="muted")
    else:
        error = html.Div(className=f"source-error family-{failure.error_family}", children=[
            html.Div([html.Span(error_family_text(failure.error_family, language), className="badge badge-critical"),
                      f" {format_time(failure.started_at, zone, now)} · {t('run', language)} #{failure.id}"]),
            html.Pre(failure.error_message or "", className="error-message"),
            *([html.P(t("paused_hint", language), className="hint")] if failure.error_family == "fatal" else []),
            *([html.Div([f"{t('payload', language)}: ", html.Code(failure.archive)], className="meta")]
              if failure.archive else []),
        ])
    if records is None:
        quarantine = html.P(t("details_for_city", language), className="muted")
    elif not records:
        quarantine = html.P(t("no_quarantine", language), className="muted")
    else:
        quarantine = html.Ol(className="quarantine-list", children=[_quarantined(row, zone, now) for row in records])
    return html.Section(className="source-detail", **{"data-source": status.config.name}, children=[
        html.H3(status.config.name),
        html.H4(t("last_error", language)), error,
        html.H4(t("quarantined_records", language, n=len(records or []))), quarantine,
    ])


def _quarantined(row: QuarantinedRow, zone: str, now: int) -> html.Li:
    try:
        raw = json.dumps(json.loads(row.raw), ensure_ascii=False)
    except ValueError:
        raw = row.raw
    if len(raw) > RAW_EXCERPT:
        raw = raw[:RAW_EXCERPT] + " …"
    return html.Li(className="quarantine-row", children=[
        html.Div([html.Span(f"#{row.id}", className="meta"), f" {format_time(row.created_at, zone, now)} · ",
                  html.Span(row.reason, className="reason")]),
        html.Code(raw, className="raw"),
        *([html.Div(html.Code(row.source), className="meta")] if row.source else []),
    ])
