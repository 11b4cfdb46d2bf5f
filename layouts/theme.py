"""The one colour language: the same five states colour map fills, cards, bars, rows and source dots."""

from cityops.status import Status

STATUS_COLOURS = {
    Status.NORMAL: "#2fb67c",
    Status.WARNING: "#f5b83d",
    Status.CRITICAL: "#f0524f",
    Status.STALE: "#7d8796",
    Status.NO_DATA: "#3a4556",
}

BACKGROUND = "#0a111e"
PANEL = "#101a2b"
GRID = "#1e2a3f"
TEXT = "#e8eef8"
MUTED = "#93a3bd"
FONT_FAMILY = ('"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", '
               '"Microsoft YaHei", "Inter", "Segoe UI", system-ui, sans-serif')


def status_colour(status: Status | str) -> str:
    return STATUS_COLOURS[Status(status)]


def display_scale(display: dict | None) -> float:
    """How much larger chart type must be on this screen: 1 on a 1920-px display, 2 on a 4K wall."""
    try:
        return min(3.0, max(1.0, float((display or {}).get("scale", 1))))
    except (TypeError, ValueError):
        return 1.0


def plotly_layout(scale: float = 1.0, **overrides) -> dict:
    """The dark, quiet chart style shared by every figure; type grows with the display like the page's."""
    layout = dict(
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        font=dict(family=FONT_FAMILY, color=TEXT, size=round(13 * scale)),
        margin=dict(l=round(48 * scale), r=16, t=8, b=round(32 * scale)),
        xaxis=dict(gridcolor=GRID, zeroline=False, linecolor=GRID),
        yaxis=dict(gridcolor=GRID, zeroline=False, linecolor=GRID),
        showlegend=False, hoverlabel=dict(bgcolor=PANEL, bordercolor=GRID, font=dict(color=TEXT)),
    )
    layout.update(overrides)
    return layout
