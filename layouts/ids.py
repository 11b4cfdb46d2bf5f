"""Every component id of the screen, declared once; layouts and callbacks both import from here."""

from enum import StrEnum


class PageIds(StrEnum):
    SELECTION = "selection"        # dcc.Store: {"unit": code, "indicator": key}
    REFRESH = "refresh-interval"   # dcc.Interval driving data refresh
    CLOCK_TICK = "clock-tick"      # dcc.Interval driving the clock only (clientside)
    TIMEZONE = "city-timezone"     # dcc.Store: the city's IANA zone, for the browser-side clock
    DISPLAY = "display"            # dcc.Store: {"scale": n}, chart type scaled to the screen (1 at 1920 px)
    MAP_PAINTED = "map-painted"    # dcc.Store: set once the map's polygons have painted; the panels load after
    CHARTS_READY = "charts-ready"  # dcc.Store: set once the panels have painted; the charts mount after


class HeaderIds(StrEnum):
    CLOCK = "header-clock"
    LAST_UPDATE = "header-last-update"
    SOURCES = "header-sources"
    BREADCRUMB = "header-breadcrumb"
    INDICATOR = "header-indicator"
    INDICATOR_SLOT = "header-indicator-slot"  # holds a preview of the selector until the map has painted


class SourceIds(StrEnum):
    PANEL = "sources-panel"        # the drawer listing every connector (opened from HeaderIds.SOURCES)
    CLOSE = "sources-close"
    BODY = "sources-body"
    SELECTED = "sources-selected"  # dcc.Store: name of the source whose details are shown


def source_row_id(name: str) -> dict:
    return {"type": "source-row", "name": name}


class MapIds(StrEnum):
    MAP = "map"
    UNITS = "map-units"
    LABELS = "map-labels"
    LEGEND = "map-legend"
    TITLE = "map-title"


class KpiIds(StrEnum):
    PANEL = "kpi-panel"
    HEADING = "kpi-heading"
    DIGEST = "kpi-digest"          # dcc.Store: a digest of the cards shown (redrawn only on change)


class TrendIds(StrEnum):
    BODY = "trend-body"            # holds a placeholder, then the graph (mounted once, after the other panels)
    GRAPH = "trend-graph"
    TITLE = "trend-title"


class RankingIds(StrEnum):
    CHILDREN_BODY = "ranking-children-body"  # holds a placeholder, then the CHILDREN graph
    CHILDREN = "ranking-children"
    CHILDREN_TITLE = "ranking-children-title"


class AlertIds(StrEnum):
    TITLE = "alerts-title"
    LIST = "alerts-list"                  # the open alerts of the unit being viewed, most urgent first
    LIST_DIGEST = "alerts-list-digest"    # dcc.Store: a digest of what the list shows (redrawn only on change)
    DRAWER = "alert-drawer"               # the drill-down of one alert (opened by clicking its row)
    CLOSE = "alert-drawer-close"
    SELECTED = "alert-selected"           # dcc.Store: id of the alert whose drawer is open (None: closed)
    CHANGED = "alert-changed"             # dcc.Store: set after each action, so the list and the drawer redraw
    DRAWER_DIGEST = "alert-drawer-digest"  # dcc.Store: likewise for the drawer's head, evidence and trail
    HEAD = "alert-head"
    TREND_BODY = "alert-trend-body"       # holds the TREND graph while the drawer is open
    TREND = "alert-trend"
    EVIDENCE = "alert-evidence"
    HISTORY = "alert-history"
    ACTOR = "alert-actor"                 # "your name", when no trusted proxy names the operator
    ACTOR_STORE = "alert-actor-name"      # dcc.Store (browser-local): the name typed last time
    ACTOR_NOTE = "alert-actor-note"       # who the actions will be recorded as
    ACKNOWLEDGE = "alert-acknowledge"
    ASSIGNEE = "alert-assignee"
    ASSIGN = "alert-assign"
    COMMENT_TEXT = "alert-comment-text"
    COMMENT = "alert-comment"
    RESOLUTION = "alert-resolution"
    CLOSE_ALERT = "alert-close"
    MESSAGE = "alert-message"             # what the last action did, or why it was refused


def alert_row_id(alert_id) -> dict:
    """A row of the alert panel (alert_id: the alert's id, or dash.ALL to match every row)."""
    return {"type": "alert-row", "alert": alert_id}


def crumb_id(code: str) -> dict:
    return {"type": "breadcrumb-crumb", "code": code}


def kpi_card_id(indicator_key: str) -> dict:
    return {"type": "kpi-card", "indicator": indicator_key}
