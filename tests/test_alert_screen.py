"""The alert panel and drawer without a browser: the builders (each rule type's row, empty state, chips, the
breach shaded on the trend) and the callbacks called as plain functions on a real SQLite city — who acts, what
is recorded, and that an alert outside the viewer's scope is refused."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from dash import no_update
from plotly.utils import PlotlyJSONEncoder
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).parent))

from city_factory import CITY, tiny_city  # noqa: E402
from cityops.alerts.evaluate import evaluate_alerts  # noqa: E402
from cityops.alerts.queries import LIST_COLUMNS  # noqa: E402
from cityops.alerts.rules import Rule, RuleType, load_alert_config  # noqa: E402
from cityops.boundaries import replace_units  # noqa: E402
from cityops.catalog import load_catalog  # noqa: E402
from cityops.db import migrate, session_scope  # noqa: E402
from cityops.hierarchy import Level  # noqa: E402
from cityops.models import Alert, AlertEvent  # noqa: E402
from cityops.rollup import process_backlog, queue_rollups  # noqa: E402
from cityops.scope import scope_of_unit  # noqa: E402
from cityops.settings import Settings  # noqa: E402
from cityops.storage import sync_indicators, upsert_observations  # noqa: E402
from cityops.tree import load_tree  # noqa: E402
from dash_calls import in_callback  # noqa: E402

HOUR = 3600
DISTRICT, OTHER_DISTRICT = "990101", "990102"
COMMUNITY = "990101001001"   # in street 990101001, district 990101: 社区01001
ELSEWHERE = "990102001001"   # in district 990102
CATALOG = load_catalog(Settings().catalog_path)
OVER = Rule("hotline-community", RuleType.THRESHOLD, ("hotline_complaints",), (Level.COMMUNITY,), 0, 0,
            description="A community's 12345 count past its line.")
# The app's rules file (the drawer reads each rule's description from it), holding the one rule evaluated here.
RULES_FILE = f"""rules:
  - name: {OVER.name}
    description: {OVER.description}
    type: threshold
    indicator: hotline_complaints
    levels: [community]
"""


def walk(node):
    """Every component in a tree (lists of components included)."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from walk(item)
    elif hasattr(node, "to_plotly_json"):
        yield node
        yield from walk(getattr(node, "children", None))


def text_of(component) -> str:
    """Every string a component tree shows, joined: what a person would read."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            walk(node.get("props", {}).get("children"))
        elif isinstance(node, str):
            found.append(node)

    walk(json.loads(json.dumps(component, cls=PlotlyJSONEncoder)))
    return " ".join(found)


def classes_of(component) -> list[str]:
    """Every className in a component tree."""
    serialised = json.dumps(component, cls=PlotlyJSONEncoder)
    return [name for value in _values(json.loads(serialised), "className") for name in value.split()]


def _values(node, key):
    if isinstance(node, list):
        for item in node:
            yield from _values(item, key)
    elif isinstance(node, dict):
        props = node.get("props", {})
        if key in props:
            yield props[key]
        yield from _values(props.get("children"), key)


# ------------------------------------------------------------------------------------------------
# Builders
# ------------------------------------------------------------------------------------------------


def listed(**overrides) -> pd.DataFrame:
    """One row as alert_list returns it (a critical threshold breach in 社区01001, firing, untouched)."""
    row = dict(id=7, rule=OVER.name, unit_id=5, code=COMMUNITY, name_zh="社区01001", name_en="Community 01001",
               level=int(Level.COMMUNITY), indicator="hotline_complaints", severity="critical", phase="firing",
               value=6.0, line=4.0, started_at=1_000_000, fired_at=1_000_000, resolved_at=None,
               last_breach_at=1_000_000, acknowledged_by=None, assignee=None, closed_at=None, dispatch_due=1_000_900,
               handle_due=1_014_400, overdue=False)
    row.update(overrides)
    return pd.DataFrame([row], columns=LIST_COLUMNS)


@pytest.mark.parametrize("rule, indicator, value, line, expected", [
    (OVER, "hotline_complaints", 6.0, 4.0, ["6", "件/时", "≥ 4"]),
    (Rule("sorting", RuleType.THRESHOLD, ("garbage_sorting_compliance",), ()), "garbage_sorting_compliance", 71.5,
     80.0, ["71.5", "%", "≤ 80"]),
    # A critical alert whose latest breach was only a warning: its value is short of the line it crossed before.
    (Rule("pressure", RuleType.THRESHOLD, ("water_pressure",), ()), "water_pressure", 0.21, 0.18,
     ["0.21", "MPa", "曾越线 ≤ 0.18"]),
    (Rule("surge", RuleType.RATE_OF_CHANGE, ("hotline_complaints",), (), options={"compare": "same_hour_last_week"}),
     "hotline_complaints", 150.0, 150.0, ["+150%", "较上周同时", "线 150%"]),
    (Rule("jump", RuleType.RATE_OF_CHANGE, ("power_load_ratio",), (), options={"compare": "previous_period"}),
     "power_load_ratio", -32.4, 30.0, ["-32%", "较上期"]),
    (Rule("pm", RuleType.ANOMALY, ("pm25",), ()), "pm25", 6.24, 6.0, ["z 6.2", "线 6.0"]),
    (Rule("quiet", RuleType.NO_DATA, ("fire_alarms",), ()), "fire_alarms", 3 * HOUR + 60, 4 * HOUR,
     ["静默 3 小时", "≥ 4 小时"]),
    (Rule("mismatch", RuleType.CONSISTENCY, ("hotline_complaints",), ()), "hotline_complaints", 28.3, 10.0,
     ["相差 28%", "线 10%"]),
])
def test_each_rule_type_says_its_value_in_its_own_terms(rule, indicator, value, line, expected):
    from layouts.alerts import alert_rows

    rows = alert_rows(listed(rule=rule.name, indicator=indicator, value=value, line=line), {rule.name: rule},
                      CATALOG, "区1", 1, "zh", "Asia/Shanghai", 1_000_720)
    shown = text_of(rows)
    for part in expected:
        assert part in shown, (part, shown)
    assert CATALOG[indicator].name_zh in shown and "社区01001" in shown and "社区" in shown
    # Fired 720 s before now: the age first, then the time of day (which a narrow row leaves out first).
    since = rows[0].children[0].children[-1]
    assert [part.children for part in since.children] == ["12 分钟前", " · 21:46"]
    assert since.title == "12 分钟前 · 21:46"


def test_a_silent_source_is_named_in_its_row_and_its_runs_are_its_evidence():
    from cityops.alerts.queries import Evidence
    from layouts.alert_drawer import evidence_sections
    from layouts.alerts import alert_rows

    quiet = Rule("sources-silent", RuleType.NO_DATA, (), ())
    row = listed(rule=quiet.name, indicator=None, source="district-hotline-api", code=CITY, name_zh="小城市",
                 level=int(Level.CITY), value=3 * HOUR, line=HOUR)
    shown = text_of(alert_rows(row, {quiet.name: quiet}, CATALOG, "小城市", 1, "zh", "Asia/Shanghai", 1_000_720))
    assert "数据源 district-hotline-api" in shown and "静默 3 小时" in shown and "≥ 1 小时" in shown
    runs = pd.DataFrame([[9, "district-hotline-api", 999_000, 999_010, "failed", 0, 0, 0, None]],
                        columns=["id", "connector", "started_at", "finished_at", "status", "fetched", "accepted",
                                 "rejected", "archive"])
    found = Evidence({"source": "district-hotline-api"}, pd.DataFrame(columns=["unit_id", "code", "name_zh",
                     "name_en", "at", "value", "run_id"]), runs, pd.DataFrame())
    sections = text_of(evidence_sections(found, None, CATALOG, "zh", "Asia/Shanghai", 1_000_720))
    assert "依据数据" not in sections and "#9" in sections and "失败" in sections


def test_a_row_shows_where_the_alert_stands():
    from layouts.alerts import alert_rows

    frame = pd.concat([listed(id=1, overdue=True, acknowledged_by="王值班 (未认证)"),
                       listed(id=2, phase="resolved", resolved_at=1_000_500, severity="warning", assignee="城管中队")])
    rows = alert_rows(frame, {OVER.name: OVER}, CATALOG, "区1", 2, "en", "Asia/Shanghai", 1_000_720)
    first, second = rows
    assert first.id == {"type": "alert-row", "alert": 1}
    assert "overdue" in first.className and "severity-critical" in first.className
    assert "chip-overdue" in classes_of(first) and "OVERDUE" in text_of(first)
    assert "firing" in text_of(first) and "ack'd by 王值班 (未认证)" in text_of(first)
    assert "chip-overdue" not in classes_of(second) and "recovered" in second.className
    assert "recovered" in text_of(second) and "assigned to 城管中队" in text_of(second)
    assert "warning" in text_of(second)


@pytest.mark.parametrize("language, name_zh, name_en, level, says", [
    ("zh", "城白街道", "Chengbai Subdistrict", Level.STREET, True),
    ("en", "城白街道", "Chengbai Subdistrict", Level.STREET, True),
    ("en", "枫林镇", "Fenglin Town", Level.STREET, True),
    ("zh", "陆家村", "Lujia Village", Level.COMMUNITY, True),
    ("en", "松门区", "Songmen District", Level.DISTRICT, True),
    ("zh", "社区01001", "Community 01001", Level.COMMUNITY, False),  # an imported name without its level word
    ("en", "社区01001", "Community 01001", Level.COMMUNITY, False),
    ("zh", "城白", "Chengbai", Level.STREET, False),
    ("en", "城白街道", "Districtview", Level.STREET, False),           # a word ending, not the level's word
    ("zh", "松门区", "Songmen District", Level.STREET, False),          # a district's word on a street
])
def test_a_row_names_the_unit_s_level_only_where_its_name_does_not(language, name_zh, name_en, level, says):
    from layouts.alerts import alert_rows
    from layouts.text import level_name, name_says_level

    assert name_says_level(name_zh if language == "zh" else name_en, level, language) is says
    (row,) = alert_rows(listed(name_zh=name_zh, name_en=name_en, level=int(level)), {OVER.name: OVER}, CATALOG,
                        "区1", 1, language, "Asia/Shanghai", 1_000_720)
    levels = [part for part in walk(row) if getattr(part, "className", None) == "alert-level"]
    assert [part.children for part in levels] == ([] if says else [level_name(level, language)])


def test_no_open_alerts_is_said_not_left_blank_and_a_long_list_says_what_it_shows():
    from layouts.alerts import MAX_ROWS, alert_rows, alert_title

    empty = alert_rows(listed().iloc[0:0], {}, CATALOG, "区1", 0, "zh", "Asia/Shanghai", 1_000_720)
    assert text_of(empty).endswith("区1当前没有未结告警")
    many = pd.concat([listed(id=i + 1) for i in range(MAX_ROWS + 5)])
    rows = alert_rows(many, {}, CATALOG, "区1", 90, "zh", "Asia/Shanghai", 1_000_720)
    assert len(rows) == MAX_ROWS + 1 and text_of(rows[-1]) == f"显示最紧急的 {MAX_ROWS} 条，共 90 条"
    assert text_of(alert_title("鹤口区", 3, 1, "zh")) == "鹤口区  · 告警 （ 3 未结  ·  1 超时 ）"
    assert {"heading-words", "heading-name"} <= set(classes_of(alert_title("鹤口区", 3, 1, "zh")))  # they give way
    assert "超时" not in text_of(alert_title("鹤口区", 3, 0, "zh"))
    assert "alerts-overdue-count" in classes_of(alert_title("Hekou", 3, 1, "en"))


def test_deadlines_make_an_alert_overdue_until_it_is_taken_up_and_closed():
    from cityops.alerts.queries import deadlines_passed

    alert = {"dispatch_due": 100, "handle_due": 1000, "acknowledged_at": None, "assignee": None, "closed_at": None}
    assert deadlines_passed(alert, 50) == (False, False)
    assert deadlines_passed(alert, 101) == (True, False)
    assert deadlines_passed({**alert, "assignee": "城管中队"}, 101) == (False, False)
    assert deadlines_passed({**alert, "acknowledged_at": 90}, 1001) == (False, True)
    assert deadlines_passed({**alert, "closed_at": 900}, 1001) == (False, False)


def test_the_drawer_trend_shades_the_breach_in_its_severity_colour():
    from layouts.alert_drawer import alert_trend_figure, trend_window
    from layouts.theme import STATUS_COLOURS

    now = 2_000_000
    alert = {"id": 3, "started_at": now - 2 * HOUR, "resolved_at": None, "severity": "critical"}
    series = pd.DataFrame({"time": [now - 3 * HOUR, now - 2 * HOUR, now - HOUR], "value": [1.0, 6.0, 5.0],
                           "reported": 1, "expected": 1})
    indicator = CATALOG["hotline_complaints"]
    figure = alert_trend_figure(series, indicator, indicator.thresholds_at(Level.COMMUNITY), alert,
                                "Asia/Shanghai", "zh", now)
    assert trend_window(alert, now) == (now - 2 * HOUR - 86400, now)
    shaded = [shape for shape in figure.layout.shapes if shape.type == "rect" and shape.yref == "y domain"]
    assert len(shaded) == 1 and shaded[0].fillcolor == STATUS_COLOURS["critical"]
    assert pd.Timestamp(shaded[0].x0).timestamp() == now - 2 * HOUR
    assert pd.Timestamp(shaded[0].x1).timestamp() == now  # still going on: shaded up to now
    lines = {shape.y0 for shape in figure.layout.shapes if shape.type == "line" and shape.yref == "y"}
    assert lines == {2, 4}  # the community's warning and critical lines, as the trend panel draws them
    began = [shape for shape in figure.layout.shapes if shape.type == "line" and shape.yref == "y domain"]
    assert [pd.Timestamp(shape.x0).timestamp() for shape in began] == [now - 2 * HOUR]  # where the breach began
    resolved = alert_trend_figure(series, indicator, None, {**alert, "resolved_at": now - HOUR}, "Asia/Shanghai",
                                  "zh", now)
    assert pd.Timestamp(resolved.layout.shapes[-1].x1).timestamp() == now - HOUR  # shaded up to its recovery


# ------------------------------------------------------------------------------------------------
# Callbacks, on a real database
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app on the tiny city, where 社区01001 (critical, 6 件/时) and 990102001001 (warning) breach."""
    from app import create_app

    folder = tmp_path_factory.mktemp("alert_screen")
    (folder / "alerts.yaml").write_text(RULES_FILE, encoding="utf-8")
    settings = replace(Settings(), database_url=f"sqlite:///{folder / 'db.sqlite'}", run_scheduler=False,
                       alerts_path=folder / "alerts.yaml")
    migrate(settings.database_url)
    now = int(time.time())
    at = now - HOUR
    with session_scope(settings.database_url) as session:
        replace_units(session, tiny_city())
        ids = sync_indicators(session, CATALOG)
        units = dict(session.execute(text("SELECT code, id FROM units")).all())
        values = {COMMUNITY: 6.0, ELSEWHERE: 3.0}
        upsert_observations(session, [{"unit_id": ident, "indicator_id": ids["hotline_complaints"], "observed_at": at,
                                       "value": values.get(code, 0.0), "run_id": None}
                                      for code, ident in units.items() if len(code) == 12])
        queue_rollups(session, CATALOG, ids, {"hotline_complaints": {at}})
        tree = load_tree(session)
        process_backlog(session, CATALOG, ids, tree, now)
        config = load_alert_config(settings.alerts_path, CATALOG, environ={})
        assert [rule.name for rule in config.rules] == [OVER.name]
        evaluate_alerts(session, CATALOG, ids, tree, config, now)
    return create_app(settings)


def trigger(component_id, prop: str, value) -> list[dict]:
    name = json.dumps(component_id, separators=(",", ":"), sort_keys=True) if isinstance(component_id, dict) \
        else str(component_id)
    return [{"prop_id": f"{name}.{prop}", "value": value}]


def alert_at(app, code: str) -> int:
    with session_scope(app.server.config["ONESCREEN"].settings.database_url) as session:
        unit_id = session.scalar(text("SELECT id FROM units WHERE code = :code").bindparams(code=code))
        return session.scalar(select(Alert.id).where(Alert.unit_id == unit_id))


def events_of(app, alert_id: int) -> list[tuple[str, str]]:
    with session_scope(app.server.config["ONESCREEN"].settings.database_url) as session:
        return [tuple(row) for row in session.execute(select(AlertEvent.action, AlertEvent.actor).where(
            AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)).all()]


def as_viewer_of(app, code: str, function, *args):
    """Call an adapter as a viewer whose scope is the unit `code` (login does not exist yet: the scope is set on
    the request the adapter receives, which is what login will decide)."""
    from callbacks.context import viewer_request

    with app.server.test_request_context("/_dash-update-component", method="POST"):
        with viewer_request() as request:
            limited = replace(request, scope=scope_of_unit(request.tree, request.tree.id_by_code[code]))
            return function(limited, *args)


def test_the_panel_lists_the_open_alerts_of_the_unit_viewed(app):
    from callbacks.alerts import show_alerts

    rows, title, digest = in_callback(app, show_alerts, {"unit": CITY, "indicator": "aqi"}, 0)
    assert [row.id["alert"] for row in rows] == [alert_at(app, COMMUNITY), alert_at(app, ELSEWHERE)]  # critical first
    assert text_of(title) == "小城市  · 告警 （ 2 未结 ）"
    assert "6 件/时 ≥ 4" in text_of(rows[0])
    # A refresh that finds the same alerts redraws nothing (a row being clicked stays where it is).
    assert in_callback(app, show_alerts, {"unit": CITY, "indicator": "aqi"}, 1, None, None, digest) == \
        (no_update, no_update, no_update)
    in_district, _title, district_digest = in_callback(app, show_alerts, {"unit": DISTRICT, "indicator": "aqi"}, 0,
                                                       None, None, digest)
    assert [row.id["alert"] for row in in_district] == [alert_at(app, COMMUNITY)] and district_digest != digest
    forged, forged_title, _digest = in_callback(app, show_alerts, {"unit": "110101", "indicator": "aqi"}, 0)
    assert len(forged) == 2 and "小城市" in text_of(forged_title)  # an unknown unit falls back to the scope's root


def test_clicking_a_row_opens_the_drawer_and_drills_to_the_alert_unit(app):
    from callbacks.alerts import open_alert

    ident = alert_at(app, COMMUNITY)
    selection = {"unit": CITY, "indicator": "aqi"}
    opened = in_callback(app, open_alert, [1], None, selection,
                         triggered=trigger({"type": "alert-row", "alert": ident}, "n_clicks", 1))
    # The map goes to the alert's unit and shows the alert's indicator, as the drawer does.
    assert opened == (ident, {"unit": COMMUNITY, "indicator": "hotline_complaints"})
    redraw = in_callback(app, open_alert, [0], None, selection,
                         triggered=trigger({"type": "alert-row", "alert": ident}, "n_clicks", 0))
    assert redraw == (no_update, no_update)  # rows redrawn by a refresh are not clicks
    for forged in (999_999, "7; DROP TABLE alerts", -1, 10**30, True, {"id": ident}):
        assert in_callback(app, open_alert, [1], None, selection,
                           triggered=trigger({"type": "alert-row", "alert": forged}, "n_clicks", 1)) == \
            (no_update, no_update)
    assert in_callback(app, open_alert, [], 1, selection, triggered=trigger("alert-drawer-close", "n_clicks", 1)) \
        == (None, no_update)


def test_the_drawer_content_is_mounted_on_the_first_open_only(app):
    from callbacks.alerts import mount_drawer_content

    ident = alert_at(app, COMMUNITY)
    content = in_callback(app, mount_drawer_content, ident, None)
    ids = {getattr(part, "id", None) for part in walk(content)}
    assert {"alert-head", "alert-acknowledge", "alert-close", "alert-actor"} <= ids
    assert in_callback(app, mount_drawer_content, ident, [{"props": {}}]) is no_update  # already mounted
    assert in_callback(app, mount_drawer_content, None, None) is no_update  # nothing opened
    assert in_callback(app, mount_drawer_content, "not an id", None) is no_update


def test_the_drawer_shows_the_rule_the_records_and_the_trail(app):
    from callbacks.alerts import show_alert_drawer, show_alert_trend

    ident = alert_at(app, COMMUNITY)
    head, found, trail, *disabled, digest, message = in_callback(
        app, show_alert_drawer, ident, 0, None, triggered=trigger("alert-selected", "data", ident))
    assert message == ""  # the last alert's "done" message goes
    assert "社区01001" in text_of(head) and "12345热线诉求" in text_of(head)
    assert "hotline-community" in text_of(head) and "阈值" in text_of(head)
    assert "A community's 12345 count past its line." in text_of(head)  # from the rules file
    assert "仍在持续" in text_of(head)
    assert "社区01001" in text_of(found) and "6 件/时" in text_of(found)
    assert "触发" in text_of(trail) and "system" in text_of(trail)
    assert disabled == [False, False, False]
    assert in_callback(app, show_alert_drawer, ident, 1, None, None, digest,
                       triggered=trigger("alert-drawer-refresh", "n_intervals", 1)) == (no_update,) * 8
    graph = in_callback(app, show_alert_trend, ident)
    assert graph.id == "alert-trend" and graph.figure.layout.shapes
    assert in_callback(app, show_alert_drawer, None, 1, None, triggered=trigger("alert-drawer-refresh", "n_intervals", 1)) \
        == (no_update,) * 8  # closed: a refresh asks nothing


def test_actions_are_recorded_with_who_acted_and_refusals_keep_what_was_typed(app):
    from callbacks.alerts import act_on_alert, show_actor, show_alerts

    ident = alert_at(app, COMMUNITY)

    def act(button: str, name="王值班", assignee=None, comment=None, resolution=None):
        return in_callback(app, act_on_alert, 1, 1, 1, 1, ident, name, assignee, comment, resolution,
                           triggered=trigger(button, "n_clicks", 1))

    message, changed, *_ = act("alert-acknowledge", name="  ")
    assert "请先填写你的姓名" in text_of(message) and changed is no_update
    assert "请先填写你的姓名" in text_of(in_callback(app, show_actor, "", ident))
    assert in_callback(app, show_actor, "王值班", ident) == "操作记录为：王值班 (未认证)"

    message, changed, comment_out, resolution_out = act("alert-acknowledge")
    assert "已确认" in text_of(message) and changed is not no_update
    act("alert-assign", assignee="区1城管中队")
    message, _changed, comment_out, _resolution = act("alert-comment", comment="现场已处置一半")
    assert comment_out == "" and "备注已记录" in text_of(message)  # recorded: the box is emptied

    message, changed, comment_out, resolution_out = act("alert-close", resolution="   ", comment="draft note")
    assert "关闭告警须填写处置结果" in text_of(message)
    assert (changed, comment_out, resolution_out) == (no_update, no_update, no_update)  # nothing typed is lost
    message, *_ = act("alert-close", resolution="管道疏通完毕")
    assert "告警已关闭" in text_of(message)

    assert events_of(app, ident) == [("firing", "system"), ("acknowledged", "王值班 (未认证)"),
                                     ("assigned", "王值班 (未认证)"), ("commented", "王值班 (未认证)"),
                                     ("closed", "王值班 (未认证)")]
    message, *_ = act("alert-assign", assignee="someone")
    assert "closed by 王值班 (未认证)" in text_of(message)  # the domain's reason, shown as it is
    rows, title, _digest = in_callback(app, show_alerts, {"unit": CITY}, 0)
    assert ident not in [row.id["alert"] for row in rows if hasattr(row, "id")]  # it left the open list
    assert "1 未结" in text_of(title)


def test_a_trusted_proxy_header_names_the_actor_outright(app, monkeypatch):
    from callbacks.context import USER_HEADER_ENV, current_actor

    def actor(typed, headers):
        return in_callback(app, current_actor, typed, "zh", headers=headers)

    assert actor("李四", {"X-Remote-User": "zhangsan"}) == "李四 (未认证)"  # no header configured: not trusted
    monkeypatch.setenv(USER_HEADER_ENV, "X-Remote-User")
    assert actor("李四", {"X-Remote-User": "zhangsan"}) == "zhangsan"
    assert actor("李四", {}) == "李四 (未认证)"
    assert actor(None, {}) is None and actor({"name": "x"}, {}) is None


def test_an_alert_outside_the_viewer_scope_is_refused(app):
    from callbacks.alerts import alert_panel, alert_trend, drawer_parts, take_action
    from cityops.alerts.queries import alert_subject

    def subject(request, alert_id):
        return alert_subject(request.session, request.scope, request.tree, request.ids, alert_id)

    elsewhere = alert_at(app, ELSEWHERE)
    done, message = as_viewer_of(app, DISTRICT, take_action, "acknowledge", elsewhere, "王值班 (未认证)")
    assert (done, message) == (False, "此告警不在你的权限范围内")
    assert events_of(app, elsewhere) == [("firing", "system")]  # nothing recorded
    head, found, trail, closed = as_viewer_of(app, DISTRICT, drawer_parts, elsewhere)
    assert text_of(head) == "此告警不在你的权限范围内" and found == [] and trail == [] and closed
    assert as_viewer_of(app, DISTRICT, subject, elsewhere) is None
    assert as_viewer_of(app, DISTRICT, alert_trend, elsewhere) == "此告警不在你的权限范围内"
    assert as_viewer_of(app, OTHER_DISTRICT, subject, elsewhere) == (ELSEWHERE, "hotline_complaints")
    # The list of a district viewer never shows the other district's alerts, whatever unit the page asks for.
    rows, _title = as_viewer_of(app, DISTRICT, alert_panel, {"unit": OTHER_DISTRICT})
    assert elsewhere not in [row.id["alert"] for row in rows if hasattr(row, "id")]


DISTRICT_RULES_FILE = """rules:
  - name: hotline-district
    type: threshold
    indicator: hotline_complaints
    levels: [district]
"""


@pytest.fixture(scope="module")
def filling_app(tmp_path_factory):
    """A district breaching for three hours (its four communities 40 件/时 each: 160 ≥ 115), the current hour
    with three of the four in so far (120: drawn, a fall that is not there)."""
    from app import create_app

    folder = tmp_path_factory.mktemp("alert_filling")
    (folder / "alerts.yaml").write_text(DISTRICT_RULES_FILE, encoding="utf-8")
    settings = replace(Settings(), database_url=f"sqlite:///{folder / 'db.sqlite'}", run_scheduler=False,
                       alerts_path=folder / "alerts.yaml")
    migrate(settings.database_url)
    if time.time() % HOUR > HOUR - 30:  # the hour must not turn before the callback reads it
        time.sleep(HOUR - time.time() % HOUR + 1)
    now = int(time.time())
    current = now // HOUR * HOUR
    with session_scope(settings.database_url) as session:
        replace_units(session, tiny_city())
        ids = sync_indicators(session, CATALOG)
        communities = [ident for code, ident in session.execute(text("SELECT code, id FROM units")).all()
                       if code.startswith(DISTRICT) and len(code) == 12]
        rows = [{"unit_id": ident, "indicator_id": ids["hotline_complaints"], "observed_at": at, "value": 40.0,
                 "run_id": None} for at in (current - 3 * HOUR, current - 2 * HOUR, current - HOUR)
                for ident in communities]
        rows += [{"unit_id": ident, "indicator_id": ids["hotline_complaints"], "observed_at": current,
                  "value": 40.0, "run_id": None} for ident in communities[:3]]
        upsert_observations(session, rows)
        queue_rollups(session, CATALOG, ids, {"hotline_complaints": {row["observed_at"] for row in rows}})
        tree = load_tree(session)
        process_backlog(session, CATALOG, ids, tree, now)
        evaluate_alerts(session, CATALOG, ids, tree, load_alert_config(settings.alerts_path, CATALOG, environ={}),
                        now)
    return create_app(settings), current


def test_the_drawers_trend_leaves_out_a_sums_hour_still_filling(filling_app):
    """Drawn, the district's hour with three of four communities in read as the breach easing: 160 → 120."""
    from callbacks.alerts import show_alert_trend

    app, current = filling_app
    ident = alert_at(app, DISTRICT)
    graph = in_callback(app, show_alert_trend, ident)
    line = graph.figure.data[0]
    drawn = {pd.Timestamp(x).timestamp(): y for x, y in zip(line.x, line.y) if y is not None and y == y}
    assert drawn and set(drawn.values()) == {160.0}  # the three whole hours
    assert max(drawn) < current  # the hour still filling is not drawn



def test_the_kpi_sparkline_and_the_comparison_rows_leave_out_a_sums_hour_still_filling(filling_app):
    """As the trend: the district's card line and its row under the city end at the last whole hour (160), not at
    the hour with three of four communities in (120)."""
    from cityops.readings import children_trends, sparklines
    from cityops.scope import Viewer, viewer_scope
    from cityops.storage import indicator_ids

    app, current = filling_app
    now = current + 60
    with session_scope(app.server.config["ONESCREEN"].settings.database_url) as session:
        tree = load_tree(session)
        scope, ids = viewer_scope(session, Viewer(), tree), indicator_ids(session, CATALOG)
        district = tree.id_by_code[DISTRICT]
        line = sparklines(session, scope, CATALOG, ids, district, now - 24 * HOUR, tree=tree, now=now)
        rows = children_trends(session, scope, CATALOG, ids, tree.root_id, "hotline_complaints", now - 6 * HOUR,
                               now, HOUR, tree=tree)
    assert line["hotline_complaints"] == [160.0, 160.0, 160.0]
    row = rows.loc[district]
    assert row.dropna().tolist() == [160.0, 160.0, 160.0] and pd.isna(row[current])
