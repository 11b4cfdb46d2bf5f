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


def plotly_layout(**overrides) -> dict:
    """The dark, quiet chart style shared by every figure."""
    layout = dict(
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        font=dict(family=FONT_FAMILY, color=TEXT, size=13),
        margin=dict(l=48, r=16, t=8, b=32),
        xaxis=dict(gridcolor=GRID, zeroline=False, linecolor=GRID),
        yaxis=dict(gridcolor=GRID, zeroline=False, linecolor=GRID),
        showlegend=False, hoverlabel=dict(bgcolor=PANEL, bordercolor=GRID, font=dict(color=TEXT)),
    )
    layout.update(overrides)
    return layout
