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
    "sources_title": ("数据源状态", "Data sources"),
    "close": ("关闭", "Close"),
    "source": ("数据源", "Source"),
    "last_success": ("最近成功", "Last success"),
    "schedule": ("计划", "Schedule"),
    "last_run": ("最近一次运行", "Last run"),
    "rejected_24h": ("24小时拒收", "Rejected 24 h"),
    "open_quarantine": ("待处理隔离", "Quarantined"),
    "every": ("每 {duration}", "every {duration}"),
    "run_counts": ("收 {accepted} · 拒 {rejected} · 重复 {duplicates}",
                   "{accepted} accepted · {rejected} rejected · {duplicates} duplicates"),
    "last_error": ("最近错误", "Last error"),
    "no_error": ("没有错误记录", "No error recorded"),
    "quarantined_records": ("隔离记录（最新 {n} 条）", "Quarantined records (newest {n})"),
    "no_quarantine": ("没有待处理的隔离记录", "Nothing in quarantine"),
    "payload": ("原始数据", "raw payload"),
    "run": ("运行", "run"),
    "details_for_city": ("隔离记录的原始内容仅向全市权限用户显示", "Raw quarantined records are shown to city-wide viewers only"),
    "select_source": ("点击数据源查看最近错误与隔离记录", "Select a source for its last error and quarantined records"),
    "failed": ("失败", "failed"),
    "paused_hint": ("配置或认证错误：已暂停，修改 connectors.yaml 后恢复", "configuration or authentication error: paused until connectors.yaml changes"),
    "chart_loading": ("图表载入中…", "Loading chart…"),
}

STATUS_TEXT = {
    Status.NORMAL: ("正常", "normal"),
    Status.WARNING: ("预警", "warning"),
    Status.CRITICAL: ("告警", "critical"),
    Status.STALE: ("数据过期", "stale"),
    Status.NO_DATA: ("无数据", "no data"),
}

RUN_STATUS_TEXT = {"ok": ("成功", "ok"), "partial": ("部分成功", "partial"), "failed": ("失败", "failed"),
                   "running": ("运行中", "running")}
ERROR_FAMILY_TEXT = {"fatal": ("致命：需人工处理", "fatal: needs an operator"),
                     "retriable": ("可重试：下次运行自动重试", "retriable: the next run tries again"),
                     "unexpected": ("意外错误", "unexpected"),
                     "interrupted": ("运行中断：进程被终止", "interrupted: the process stopped")}

FRESHNESS_TEXT = {"fresh": ("正常", "fresh"), "late": ("延迟", "late"), "silent": ("中断", "silent")}

LEVEL_PLURAL_EN = {Level.DISTRICT: "Districts", Level.STREET: "Streets", Level.COMMUNITY: "Communities",
                   Level.CITY: "City"}


def t(key: str, language: str, **values) -> str:
    zh, en = TEXT[key]
    return (zh if language == "zh" else en).format(**values)


def status_text(status: Status | str, language: str) -> str:
    zh, en = STATUS_TEXT[Status(status)]
    return zh if language == "zh" else en


def freshness_text(freshness: str, language: str) -> str:
    zh, en = FRESHNESS_TEXT[freshness]
    return zh if language == "zh" else en


def run_status_text(status: str, language: str) -> str:
    zh, en = RUN_STATUS_TEXT.get(status, (status, status))
    return zh if language == "zh" else en


def error_family_text(family: str | None, language: str) -> str:
    zh, en = ERROR_FAMILY_TEXT.get(family or "", (family or "", family or ""))
    return zh if language == "zh" else en


def format_duration(seconds: int, language: str) -> str:
    """5 分钟 / 5 min, 2 小时 / 2 h, 1 天 / 1 d: schedules and ages as people say them."""
    for size, zh, en in ((86400, "天", "d"), (3600, "小时", "h"), (60, "分钟", "min")):
        if seconds >= size:
            amount = seconds / size
            text = f"{amount:.0f}" if amount >= 10 or amount == int(amount) else f"{amount:.1f}"
            return f"{text} {zh}" if language == "zh" else f"{text} {en}"
    return f"{seconds} 秒" if language == "zh" else f"{seconds} s"


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
