"""UI text in Chinese and English, and the formatting of numbers and times people read from the wall."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from cityops.hierarchy import Level
from cityops.status import Status

TEXT = {
    "title": ("城市运行一屏统览", "City operations at a glance"),
    "indicator": ("指标", "Indicator"),
    "last_update": ("数据更新", "Data updated"),
    "never": ("尚无数据", "no data yet"),
    "sources": ("数据源", "Sources"),
    "kpis_of": ("{name} · 关键指标", "{name} · key indicators"),
    "trend_of": ("{indicator} · {unit} · 近7天", "{indicator} · {unit} · last 7 days"),
    "map_of": ("{indicator} · {unit}下辖{level}", "{indicator} · {level} of {unit}"),
    "over_threshold": ("超阈值单元 · {indicator}", "Over threshold · {indicator}"),
    "children_ranked": ("下级排名 · {indicator}", "{level} ranked · {indicator}"),
    "none_over": ("当前没有超过阈值的单元", "No unit is over its threshold now"),
    "reported": ("{n}/{m} 已上报", "{n} of {m} reported"),
    "as_of": ("截至 {time}", "as of {time}"),
    "no_data_since": ("{time} 起无数据", "no data since {time}"),
    "no_data": ("无数据", "no data"),
    "not_measured": ("{level}级不统计", "not measured per {level}"),
    "vs_previous": ("较上期", "vs previous"),
    "warning": ("预警", "warning"),
    "critical": ("告警", "critical"),
    "legend_title": ("图例", "Legend"),
    "threshold_warning": ("预警线", "warning"),
    "threshold_critical": ("告警线", "critical"),
    "completeness": ("上报率", "reported"),
    "loading": ("载入中…", "Loading…"),
    "chart_loading": ("图表载入中…", "Loading chart…"),
}

STATUS_TEXT = {
    Status.NORMAL: ("正常", "normal"),
    Status.WARNING: ("预警", "warning"),
    Status.CRITICAL: ("告警", "critical"),
    Status.STALE: ("数据过期", "stale"),
    Status.NO_DATA: ("无数据", "no data"),
}

LEVEL_PLURAL_EN = {Level.DISTRICT: "Districts", Level.STREET: "Streets", Level.COMMUNITY: "Communities",
                   Level.CITY: "City"}


def t(key: str, language: str, **values) -> str:
    zh, en = TEXT[key]
    return (zh if language == "zh" else en).format(**values)


def status_text(status: Status | str, language: str) -> str:
    zh, en = STATUS_TEXT[Status(status)]
    return zh if language == "zh" else en


def level_name(level: Level, language: str, plural: bool = False) -> str:
    if language == "zh":
        return level.label_zh
    return LEVEL_PLURAL_EN[level] if plural else level.label_en


def format_value(value: float | None, decimals: int) -> str:
    """Thousands separators; no false precision; '—' for a value that does not exist."""
    if value is None:
        return "—"
    return f"{value:,.{decimals}f}"


def format_time(epoch: int | None, zone: str, now: int | None = None) -> str:
    """HH:MM today, MM-DD HH:MM otherwise, in the city's zone."""
    if epoch is None:
        return "—"
    moment = datetime.fromtimestamp(epoch, ZoneInfo(zone))
    if now is not None and datetime.fromtimestamp(now, ZoneInfo(zone)).date() == moment.date():
        return moment.strftime("%H:%M")
    return moment.strftime("%m-%d %H:%M")
