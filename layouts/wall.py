"""The wall display's parts of the page (/wall or ?mode=wall): its stores and timers, and the line saying what
the wall shows. Pure builders.

The same page serves browsers and walls. assets/wall.js marks the page a wall before the first render (class
`wall` on <html>: assets/wall.css hides the controls, the cursor and text selection, sizes the type for reading
from 5 m and lays the panels out for 16:9 or ultra-wide; the page is made inert and keys are swallowed). Nothing
here runs in a browser: only a wall sets WallIds.MODE, which everything else waits for (callbacks/wall.py).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dash import dcc, html

from cityops.playlist import WallConfig
from layouts.ids import WallIds
from layouts.text import format_duration, t


def wall_components() -> list:
    """The wall's stores (untouched unless the page turns out to be a wall) and its status line (shown in the
    header's free middle on a wall, hidden elsewhere). No timer of its own: the page's refresh paces the alert
    watch, and assets/wall.js the playlist's clock (a dcc.Interval would add an entry to Dash's undo history at
    every tick)."""
    return [
        dcc.Store(id=WallIds.MODE),
        dcc.Store(id=WallIds.POLL),
        dcc.Store(id=WallIds.PLAN),
        dcc.Store(id=WallIds.WATCH),
        dcc.Store(id=WallIds.CUE),
        html.Div(id=WallIds.STATUS, className="wall-status", **{"aria-live": "polite"}),
    ]


def playlist_status(config: WallConfig, slot: int, language: str) -> html.Span:
    """轮播 3/8 · 每 45 秒: where the playlist is, so nobody wonders why the wall changed."""
    position = slot % len(config.playlist) + 1
    return html.Span(className="wall-cue wall-cue-playlist", **{"data-slot": str(slot), "data-position": str(position)},
                     children=[
                         html.Span("▶", className="wall-cue-mark"),
                         t("wall_playlist", language, position=position, total=len(config.playlist)),
                         html.Span(" · " + t("wall_every", language,
                                             duration=format_duration(config.dwell_seconds, language)),
                                   className="wall-cue-detail"),
                     ])


def alert_hold_status(alert_id: int, severity: str, until: int, zone: str, language: str) -> html.Span:
    """⚠ 新告警 · 轮播暂停至 14:32:10, in the alert's severity colour."""
    until_text = datetime.fromtimestamp(until, ZoneInfo(zone)).strftime("%H:%M:%S")
    return html.Span(className=f"wall-cue wall-cue-alert severity-{severity}",
                     **{"data-alert": str(alert_id), "data-severity": severity}, children=[
                         html.Span("⚠", className="wall-cue-mark"),
                         t("wall_alert_hold", language, time=until_text),
                     ])


def config_error_status(language: str) -> html.Span:
    return html.Span(t("wall_config_error", language), className="wall-cue wall-cue-error")
