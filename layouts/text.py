"""UI text in Chinese and English, and the formatting of numbers and times people read from the wall."""

from __future__ import annotations

import math

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
    "map_of": ("{indicator} · {unit}下辖{level}", "{indicator} · {level} of {unit}"),
    "reported": ("{n}/{m} 已上报", "{n}/{m} reported"),
    "as_of": ("截至 {time}", "as of {time}"),
    "no_data_since": ("{time} 起无数据", "no data since {time}"),
    "no_data": ("无数据", "no data"),
    "not_measured": ("{level}级不统计", "not measured per {level}"),
    "map_not_measured": ("{level}级不统计，按{measured}统计", "not measured per {level}: measured per {measured}"),
    "measured_above": ("{level}级不单独统计：显示所属的{name}的数值",
                       "Not measured per {level}: the value of {name}, which it is part of"),
    "vs_previous": ("较上期", "vs previous"),
    "warning": ("预警", "warning"),
    "critical": ("告警", "critical"),
    "threshold_warning": ("预警线", "warning"),
    "threshold_critical": ("告警线", "critical"),
    "completeness": ("上报率", "reported"),
    "trend_filling": ("{time} 起本时段汇总中（{reported}/{expected} 已上报）",
                      "{time} onwards still filling ({reported}/{expected} reported)"),
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
    # The panel's title names the unit first, as the KPI heading does: its words give way whole where room is short,
    # and words before the name left a gap in front of it.
    "alerts_heading": ("{unit} · 告警", "{unit} · alerts"),
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
    # Navigation: URL state, unit search, language switch (callbacks/navigation.py, layouts/navigation.py)
    "search_label": ("查找区域", "Find a place"),
    "search_placeholder": ("搜索街道、社区或代码", "Find a place or code"),
    "search_none": ("没有找到“{query}”", "Nothing found for “{query}”"),
    "search_more": ("另有 {n} 个结果，请输入更多文字", "{n} more: keep typing to narrow"),
    "search_in": ("{parent}", "in {parent}"),
    "language_switch": ("界面语言", "Language"),
    # -- end navigation
    # Time ranges and the comparison view (layouts/trend.py, layouts/comparison.py)
    "range_button_24h": ("24小时", "24 h"),
    "range_button_7d": ("7天", "7 d"),
    "range_button_30d": ("30天", "30 d"),
    "range_button_custom": ("自定义", "Custom"),
    "range_label_24h": ("近24小时", "last 24 hours"),
    "range_label_7d": ("近7天", "last 7 days"),
    "range_label_30d": ("近30天", "last 30 days"),
    "range_choice": ("时间范围", "Time range"),
    "range_start": ("开始日期", "Start date"),
    "range_end": ("结束日期", "End date"),
    "range_day": ("{month}月{day}日", "{day} {month}"),
    "range_day_year": ("{year}年{month}月{day}日", "{day} {month} {year}"),
    "month_names": ("", "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"),
    "range_problem_unknown": ("时间范围无效", "Unknown time range"),
    "range_problem_bad_date": ("日期无效", "Invalid date"),
    "range_problem_end_before_start": ("结束日期早于开始日期", "The end date is before the start date"),
    "range_problem_in_future": ("开始日期尚未到来", "The start date is in the future"),
    "range_problem_too_long": ("时间范围不能超过{days}天", "A range can be at most {days} days"),
    "range_fallback": ("{problem}，显示{range}", "{problem}: showing the {range}"),
    "compare_week": ("对比上周", "vs last week"),
    "compare_title": ("对比上周同期", "vs same period last week"),
    "this_period": ("本期", "this period"),
    "previous_week": ("上周同期", "same period last week"),
    "trend_title": ("{indicator} · {unit} · {range}", "{indicator} · {unit} · {range}"),
    "trend_spread": ("区间 {low}–{high}", "range {low}–{high}"),
    "no_data_in_range": ("此时间范围内无数据", "No data in this time range"),
    "compared_title": ("{level}排名", "{level} ranked"),  # then " · {indicator} · {range}" (layouts/ranking.py)
    "compared_count": ("（{n}个）", " ({n})"),
    "column_rank": ("排名", "#"),
    "column_trend": ("走势", "Trend"),
    "column_reported": ("上报", "Reported"),
    "column_as_of": ("截至", "As of"),
    "no_children": ("{unit}没有下级单位", "{unit} has no units below it"),
    "stale_since": ("截至 {time}", "as of {time}"),
    # -- end time ranges
    # Wall display (layouts/wall.py)
    "wall_playlist": ("轮播 {position}/{total}", "Playlist {position}/{total}"),
    "wall_every": ("每 {duration}", "every {duration}"),
    "wall_alert_hold": ("新告警 · 轮播暂停至 {time}", "New alert · playlist paused until {time}"),
    "wall_config_error": ("轮播配置有误，见服务器日志", "Playlist file has an error: see the server log"),
    # Any panel's as-of time once its data is older than its indicator's interval allows (layouts/freshness.py as_of_mark)
    "stale_as_of": ("数据过期 · 截至 {time}", "stale · as of {time}"),
    # -- end wall
    # Exports and reports (layouts/exports.py, cityops/exports/)
    "export": ("导出", "Export"),
    "export_menu": ("导出此面板的数据或图表", "Export this panel's data or chart"),
    "export_csv": ("CSV 数据", "CSV data"),
    "export_xlsx": ("Excel 表格", "Excel workbook"),
    "export_png": ("PNG 图片", "PNG image"),
    "export_svg": ("SVG 矢量图", "SVG vector image"),
    "export_busy": ("正在生成…", "Preparing…"),
    "export_done": ("已导出 {file}", "Exported {file}"),
    "export_done_rows": ("已导出 {file}（{rows} 行）", "Exported {file} ({rows} rows)"),
    "export_failed": ("导出失败：{reason}", "Export failed: {reason}"),
    "export_chart_unavailable": ("图表尚未显示，请稍后再导出图片", "The chart is not drawn yet: export its image in a moment"),
    "export_not_measured": ("本级不统计", "not measured at this level"),
    "export_yes": ("是", "yes"),
    "export_no": ("否", "no"),
    "export_anonymous": ("匿名", "anonymous"),
    "export_panel_kpi": ("关键指标", "Key indicators"),
    "export_panel_map": ("地图数据", "Map data"),
    "export_panel_trend": ("趋势", "Trend"),
    "export_panel_ranking": ("下级排名", "Children ranked"),
    "export_panel_alerts": ("告警列表", "Alert list"),
    "export_panel_report": ("运行报告", "Operations report"),
    "report": ("报告", "Report"),
    "report_menu": ("生成当前视图或全部范围的报告（PDF / PNG）", "A report of this view or of your whole scope (PDF / PNG)"),
    "report_view": ("当前视图", "This view"),
    "report_scope": ("全部范围", "Whole scope"),
    "report_pdf": ("PDF 报告", "PDF report"),
    "report_png": ("PNG 图片", "PNG image"),
    "report_title": ("城市运行报告", "City operations report"),
    "report_trend": ("{indicator} · 趋势", "{indicator} · trend"),
    "report_not_measured": ("不统计", "not measured"),
    "export_ranked_title": ("{level}排名 · {indicator}", "{level} ranked · {indicator}"),
    "report_ranked": ("{level}排名", "{level} ranked"),
    "report_worst_of": ("前{n}/{m}", "worst {n} of {m}"),
    "report_since": ("触发", "Since"),
    "report_more_alerts": ("另有 {n} 条未结告警未列出", "{n} more open alerts not listed"),
    "report_more_sources": ("另 {n} 个数据源", "{n} more sources"),
    "report_no_sources": ("未配置数据源", "no sources configured"),
    "report_footer": ("OneScreen · 城市运行一屏统览 · 服务器离线生成", "OneScreen · generated on the server, offline"),
    "range_24h": ("近24小时", "last 24 hours"),
    "range_7d": ("近7天", "last 7 days"),
    "range_30d": ("近30天", "last 30 days"),
    "range_custom": ("{start} 至 {end}", "{start} to {end}"),
    "sheet_data": ("数据", "Data"),
    "sheet_stamp": ("导出信息", "Export stamp"),
    "stamp_content": ("内容", "Content"),
    "stamp_unit": ("单位", "Unit"),
    "stamp_indicator": ("指标", "Indicator"),
    "stamp_time_range": ("时间范围", "Time range"),
    "stamp_as_of": ("数据截至", "Data as of"),
    "stamp_exported_at": ("导出时间", "Exported at"),
    "stamp_exported_by": ("导出人", "Exported by"),
    "stamp_scope": ("权限范围", "Scope"),
    "stamp_rows": ("行数", "Rows"),
    "stamp_source": ("数据源", "Sources"),
    "stamp_source_line": ("{name} 最近成功 {time}（{state}）", "{name}: last success {time} ({state})"),
    "col_indicator_key": ("指标代码", "Indicator key"),
    "col_indicator": ("指标", "Indicator"),
    "col_value": ("数值", "Value"),
    "col_unit_of_measure": ("计量单位", "Unit of measure"),
    "col_status": ("状态", "Status"),
    "col_observed_at": ("截至", "As of"),
    "col_reported": ("已上报", "Reported"),
    "col_expected": ("应上报", "Expected"),
    "col_previous": ("上期值", "Previous"),
    "col_change": ("较上期", "Change"),
    "col_value_of": ("数值所属单位", "Value of"),
    "col_code": ("单位代码", "Unit code"),
    "col_name": ("单位", "Unit"),
    "col_level": ("层级", "Level"),
    "col_population": ("人口", "Population"),
    "col_rank": ("排名", "Rank"),
    "col_time": ("时间", "Time"),
    "col_alert_id": ("告警编号", "Alert"),
    "col_severity": ("级别", "Severity"),
    "col_phase": ("状态", "State"),
    "col_overdue": ("超时", "Overdue"),
    "col_source": ("数据源", "Source"),
    "col_line": ("越过的线", "Line crossed"),
    "col_rule": ("规则", "Rule"),
    "col_started_at": ("开始", "Started"),
    "col_fired_at": ("触发", "Fired"),
    "col_last_breach_at": ("最近越线", "Last breach"),
    "col_acknowledged_by": ("确认人", "Acknowledged by"),
    "col_assignee": ("处置人", "Assignee"),
    "col_dispatch_due": ("派单期限", "Dispatch due"),
    "col_handle_due": ("处置期限", "Handling due"),
    # -- end exports
    # Map layers: incidents (layouts/map_panel.py)
    "incidents_layer": ("事件", "Incidents"),
    "incidents_layer_hint": ("显示或隐藏事件点位", "Show or hide the incident points"),
    "incidents_count": ("{shown} 起 · 超期 {overdue}", "{shown} open · {overdue} overdue"),
    "incidents_more": ("（另有 {count} 起未显示）", " ({count} more not shown)"),
    "incidents_off": ("已隐藏", "hidden"),
    "incidents_no_source": ("未接入来源", "no source"),
    "incident_overdue": ("超期", "Overdue"),
    "incident_open": ("办理中", "Open"),
    "incident_opened": ("受理于 {time}", "opened {time}"),
    "incident_cluster": ("{count} 起事件 · 超期 {overdue}", "{count} incidents · {overdue} overdue"),
    # -- end map layers
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


# The last words of a unit's name that say its level, as Chinese administrative names nearly always end (松门区,
# 城白街道, 枫林镇, 岳新社区, 陆家村) and their English forms (Songmen District, Chengbai Subdistrict, Fenglin Town).
_LEVEL_ENDINGS = {
    Level.DISTRICT: (("区", "县", "市", "旗"), ("district", "county", "city", "banner")),
    Level.STREET: (("街道", "镇", "乡", "苏木"), ("subdistrict", "street", "town", "township")),
    Level.COMMUNITY: (("社区", "村", "居委会", "嘎查"), ("community", "village", "neighborhood", "neighbourhood")),
}


def name_says_level(name: str | None, level: Level, language: str) -> bool:
    """Whether a unit's name already says its level (城白街道, Chengbai Subdistrict): the level word beside it would
    only repeat it."""
    if not name or level not in _LEVEL_ENDINGS:
        return False
    zh, en = _LEVEL_ENDINGS[level]
    name = name.strip()
    if language == "zh":
        return name.endswith(zh)
    return name.rpartition(" ")[2].lower() in en


def format_value(value: float | None, decimals: int) -> str:
    """Thousands separators; no false precision; '—' for a value that does not exist."""
    if value is None:
        return "—"
    return f"{value:,.{decimals}f}"


def format_threshold(value: float, decimals: int) -> str:
    """A threshold as a legend states it: a whole one without its decimals ("≥ 90 %", not "≥ 90.0 %": the line is
    90, not a measurement of it), others as values are shown ("7.5 %")."""
    return f"{value + 0.0:,.0f}" if float(value).is_integer() else format_value(value, decimals)  # -0 is 0


# From six digits on, a wall shows a figure the way it is said: 77.0万 / 770k (3 significant digits). Read from
# across the room, "770,412" is a row of digits that crowds its card; close by, browsers show every digit.
COMPACT_FROM = 100_000
COMPACT_SCALES = {"zh": ((1e8, "亿"), (1e4, "万")), "en": ((1e9, "B"), (1e6, "M"), (1e3, "k"))}


def format_compact(value: float | None, language: str) -> str | None:
    """`value` in 万/亿 (zh) or k/M/B (en) with 3 significant digits (all the integer digits of 9999万), or None
    below COMPACT_FROM."""
    if value is None or abs(value) < COMPACT_FROM:
        return None
    scales = COMPACT_SCALES["zh" if language == "zh" else "en"]
    index = next(i for i, (scale, _suffix) in enumerate(scales) if abs(value) >= scale)
    scale, suffix = scales[index]
    decimals = max(0, 2 - int(math.floor(math.log10(abs(value / scale)))))
    rounded = round(value / scale, decimals)
    if index > 0 and abs(rounded) * scale >= scales[index - 1][0]:
        # 9,999.6万 rounds to 10000万 and 999,950 to 1000k: said with the next scale up, 1.00亿 and 1.00M.
        scale, suffix = scales[index - 1]
        rounded, decimals = round(value / scale, 2), 2
    elif decimals and abs(rounded) >= 10 ** (3 - decimals):
        decimals -= 1  # 99.96万 rounds to 100.0万: three digits are enough, 100万
        rounded = round(value / scale, decimals)
    return f"{rounded:.{decimals}f}{suffix}"


def format_time(epoch: int | None, zone: str, now: int | None = None) -> str:
    """HH:MM today, MM-DD HH:MM otherwise, in the city's zone."""
    if epoch is None:
        return "—"
    moment = datetime.fromtimestamp(epoch, ZoneInfo(zone))
    if now is not None and datetime.fromtimestamp(now, ZoneInfo(zone)).date() == moment.date():
        return moment.strftime("%H:%M")
    return moment.strftime("%m-%d %H:%M")
