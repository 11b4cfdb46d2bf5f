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
    "children_ranked": ("下级排名 · {indicator}", "{level} ranked · {indicator}"),
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
    # The alert panel and its drawer (layouts/alerts.py, layouts/alert_drawer.py)
    "alerts_of": ("告警 · {unit}", "Alerts · {unit}"),
    "alerts_open": ("{n} 未结", "{n} open"),
    "alerts_overdue": ("{n} 超时", "{n} overdue"),
    "no_open_alerts": ("{unit}当前没有未结告警", "No open alerts in {unit}"),
    "alerts_shown": ("显示最紧急的 {n} 条，共 {m} 条", "The {n} most urgent of {m} shown"),
    "alert_firing": ("持续中", "firing"),
    "alert_recovered": ("已恢复", "recovered"),
    "alert_acknowledged_by": ("{name} 已确认", "ack'd by {name}"),
    "alert_assigned_to": ("指派 {name}", "assigned to {name}"),
    "alert_overdue": ("超时", "OVERDUE"),
    "alert_closed_by": ("{name} 已关闭", "closed by {name}"),
    "ago": ("{duration}前", "{duration} ago"),
    "line": ("线 {line}", "line {line}"),
    "crossed_earlier": ("曾越线 {line}", "had crossed {line}"),
    "vs_same_hour_last_week": ("较上周同时", "vs same hour last week"),
    "vs_previous_period": ("较上期", "vs previous period"),
    "silent_for": ("静默 {duration}", "silent {duration}"),
    "differs_by": ("相差 {pct}", "differs {pct}"),
    "rule_threshold": ("阈值", "threshold"),
    "rule_rate_of_change": ("变化率", "rate of change"),
    "rule_no_data": ("数据中断", "no data"),
    "rule_anomaly": ("异常", "anomaly"),
    "rule_consistency": ("一致性", "consistency"),
    "alert_detail": ("告警详情", "Alert"),
    "alert_started": ("开始", "Started"),
    "alert_fired": ("触发", "Fired"),
    "alert_resolved": ("恢复", "Recovered"),
    "alert_ongoing": ("仍在持续", "still going on"),
    "dispatch_due": ("派单时限", "Dispatch by"),
    "handle_due": ("办结时限", "Handle by"),
    "deadline_passed": ("已超时", "passed"),
    "breach_window": ("告警期间", "breach"),
    "no_trend": ("该单位不统计此指标，无趋势可显示", "This indicator is not measured for this unit: no trend"),
    "no_trend_source": ("数据源中断告警：见下方该数据源最近的运行", "A source gone silent: its latest runs are below"),
    "source_named": ("数据源 {name}", "Source {name}"),
    "records_behind": ("依据数据", "Records behind it"),
    "records_of_ratio": ("{numerator} 与 {denominator} 的原始记录", "raw records of {numerator} and {denominator}"),
    "no_records": ("没有找到对应的原始记录", "No records found for the latest breach"),
    "connector_runs": ("采集运行", "Connector runs"),
    "no_runs": ("没有关联的采集运行（由汇总计算得出）", "No connector run linked (computed from roll-ups)"),
    "incidents": ("期间的事件", "Incidents during the breach"),
    "audit_trail": ("处置记录", "Audit trail"),
    "no_events": ("尚无记录", "Nothing recorded yet"),
    "column_unit": ("单位", "Unit"),
    "column_time": ("时间", "Time"),
    "column_value": ("数值", "Value"),
    "column_run": ("运行", "Run"),
    "column_status": ("状态", "Status"),
    "column_counts": ("收 / 拒", "Accepted / rejected"),
    "column_archive": ("原始数据存档", "Raw payload archive"),
    "your_name": ("你的姓名", "Your name"),
    "assignee_hint": ("指派给（单位或人员）", "Assign to (unit or person)"),
    "comment_hint": ("备注", "Comment"),
    "resolution_hint": ("处置结果（关闭时必填）", "Resolution (required to close)"),
    "acknowledge": ("确认", "Acknowledge"),
    "assign": ("指派", "Assign"),
    "comment": ("备注", "Comment"),
    "close_alert": ("关闭告警", "Close alert"),
    "unverified": ("未认证", "unverified"),
    "recorded_as": ("操作记录为：{name}", "Actions are recorded as: {name}"),
    "need_name": ("请先填写你的姓名：每项操作都以此记入处置记录", "Type your name first: every action is recorded under it"),
    "need_assignee": ("请填写指派给哪个单位或人员", "Say which unit or person to assign it to"),
    "need_comment": ("备注不能为空", "The comment is empty"),
    "need_resolution": ("关闭告警须填写处置结果", "Closing needs a resolution: say what was done"),
    "alert_out_of_scope": ("此告警不在你的权限范围内", "This alert is outside the part of the city you may see"),
    "alert_not_found": ("告警不存在", "No such alert"),
    "action_refused": ("操作未完成：{reason}", "Not done: {reason}"),
    "done_acknowledged": ("已确认", "Acknowledged"),
    "done_assigned": ("已指派给 {name}", "Assigned to {name}"),
    "done_commented": ("备注已记录", "Comment recorded"),
    "done_closed": ("告警已关闭", "Alert closed"),
}

# What happened to an alert, as its audit trail says it (cityops/alerts/store.py, lifecycle.py).
ALERT_ACTION_TEXT = {"pending": ("待定", "pending"), "firing": ("触发", "fired"), "escalated": ("升级", "escalated"),
                     "resolved": ("恢复", "recovered"), "acknowledged": ("确认", "acknowledged"),
                     "assigned": ("指派", "assigned"), "commented": ("备注", "commented"), "closed": ("关闭", "closed")}

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


def alert_action_text(action: str, language: str) -> str:
    zh, en = ALERT_ACTION_TEXT.get(action, (action, action))
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
