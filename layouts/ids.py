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
    INDICATOR_MOUNTED = "header-indicator-mounted"  # dcc.Store: the value the selector was mounted with, until used


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
    GRAPH = "trend-graph"          # the graph's holder (trend_figure_id: the dcc.Graph in it)
    TITLE = "trend-title"
    MOUNTED_WITH = "trend-mounted-with"  # dcc.Store: the selection the graph was mounted with (callbacks/trend.py)


class RankingIds(StrEnum):
    CHILDREN_BODY = "ranking-children-body"  # holds a placeholder, then the comparison rows (ComparisonIds)
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
    CONTENT = "alert-drawer-content"      # the drawer's body and actions, mounted when an alert is first opened
    REFRESH = "alert-drawer-refresh"      # dcc.Interval in CONTENT: the open drawer's refresh (none before it mounts)
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


class NavIds(StrEnum):
    """Navigation: the URL mirroring the selection, the unit search and the language switch."""
    URL = "url"                    # dcc.Location: ?unit=&indicator=&range=... mirrors PageIds.SELECTION
    DEFAULTS = "url-defaults"      # dcc.Store: the first selection; the URL leaves out what equals it
    REQUEST = "url-request"        # dcc.Store: {"search": ...}, a URL (deep link, back/forward) to open
    APPLIED = "url-applied"        # dcc.Store: {"from": search, "selection": ...}, the view a URL opened
    SEARCH = "unit-search"         # dcc.Input: a unit's name (zh/en) or code
    SEARCH_RESULTS = "unit-search-results"  # the units found (buttons, search_result_id)


def search_result_id(code) -> dict:
    """A unit found by the header's search (code: the unit's code, or dash.ALL)."""
    return {"type": "unit-search-result", "code": code}


def language_button_id(language) -> dict:
    """The header's 中 / EN switch (language: "zh", "en", or dash.ALL)."""
    return {"type": "language-switch", "language": language}


class RangeIds(StrEnum):
    """The trend's time range (24 h, 7 days, 30 days, custom) and the previous-week comparison."""
    PRESETS = "range-presets"      # dcc.RadioItems: "24h", "7d", "30d", "custom"
    CUSTOM = "range-custom"        # holds DATES; hidden unless the range is custom
    DATES = "range-dates"          # dcc.DatePickerRange: a custom range's dates in the city's zone
    COMPARE = "range-compare"      # dcc.Checklist: ["compare"] overlays the same period of the previous week
    MESSAGE = "range-message"      # why dates just picked were not applied


class ComparisonIds(StrEnum):
    """The comparison view: the current unit's children ranked for the indicator, with their trends."""
    ROWS = "comparison-rows"       # where the browser writes MARKUP (mounted in RankingIds.CHILDREN_BODY)
    MARKUP = "comparison-markup"   # dcc.Store: the ranked rows as HTML (layouts/comparison.py says why)
    DIGEST = "comparison-digest"   # dcc.Store: a digest of the rows shown (redrawn only on change)
    CLICKED = "comparison-clicked"  # dcc.Store: {"code": ...} of the row clicked last (set in the browser)


class WallIds(StrEnum):
    """The wall display (/wall): kiosk mode, the playlist and what pauses it."""
    MODE = "wall-mode"        # dcc.Store: true once assets/wall.js found the page is a wall (else never set)
    POLL = "wall-poll"        # dcc.Store: the refresh's count, on walls only: look for alerts not yet seen
    PLAN = "wall-plan"        # dcc.Store: {"dwell": s, "now": server epoch}, for the browser's slot clock
    WATCH = "wall-watch"      # dcc.Store: {"seen": alert event id, "holds": [{alert, severity, until}]} (bounded)
    CUE = "wall-cue"          # dcc.Store: what the wall shows now: {"slot": n} or {"alert": id}
    STATUS = "wall-status"    # the line saying what the wall shows: playlist position, or the alert holding it


class ExportIds(StrEnum):
    """Exports: panel data as CSV/XLSX, reports as PDF/PNG."""
    DOWNLOAD = "export-download"            # dcc.Download: every file the screen hands over
    CHART_REQUEST = "export-chart-request"  # dcc.Store: a chart image for the browser to draw (name, title, size)
    STATUS = "export-status"                # what the last export did, or why it was refused
    BUSY = "export-busy"                    # shown while a report is drawn on the server

    @staticmethod
    def item(panel, fmt) -> dict:
        """A panel's export menu entry (panel: kpi/map/trend/ranking/alerts; fmt: csv/xlsx/png/svg; or dash.ALL)."""
        return {"type": "export-item", "panel": panel, "format": fmt}

    @staticmethod
    def slot(panel) -> dict:
        """Where a panel's export menu (or, panel "report", the header's Report menu) is mounted once the charts
        may load: ~80 components the first screen need not render (or dash.ALL)."""
        return {"type": "export-slot", "panel": panel}

    @staticmethod
    def report(subject, fmt) -> dict:
        """A report menu entry (subject: view/scope; fmt: pdf/png; or dash.ALL)."""
        return {"type": "report-item", "subject": subject, "format": fmt}


class IncidentIds(StrEnum):
    """The incident point layer on the map."""
    LAYER = "incident-layer"       # dl.GeoJSON: open incidents as clustered points (geobuf `data`)
    TOGGLE = "incident-toggle"     # the button showing or hiding them, with their counts
    COUNT = "incident-count"       # the counts inside the button
    SHOWN = "incident-shown"       # dcc.Store (browser-local): whether the layer is shown
    DIGEST = "incident-digest"     # dcc.Store: a digest of the points drawn (sent again only when they change)


def alert_row_id(alert_id) -> dict:
    """A row of the alert panel (alert_id: the alert's id, or dash.ALL to match every row)."""
    return {"type": "alert-row", "alert": alert_id}


def crumb_id(code: str) -> dict:
    return {"type": "breadcrumb-crumb", "code": code}


def trend_figure_id(panel="trend") -> dict:
    """The trend's dcc.Graph (or dash.ALL: every one mounted, none before the charts are): its figure is updated
    in one answer with the trend's title, which is there from the start."""
    return {"type": "trend-figure", "panel": panel}


def kpi_card_id(indicator_key: str) -> dict:
    return {"type": "kpi-card", "indicator": indicator_key}
