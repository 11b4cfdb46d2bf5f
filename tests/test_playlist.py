"""The wall's playlist: its file, the clock that places it, the holds new alerts put on it, what a wall's page may
send back, and the query that finds what the wall has not seen."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import pytest
from city_factory import tiny_city
from dash import no_update
from hypothesis import given, settings, strategies as st
from sqlalchemy import insert, select

from cityops.alerts.rules import load_alert_config
from cityops.alerts.store import AlertWriter, Judged
from cityops.boundaries import replace_units
from cityops.db import migrate, session_scope
from cityops.models import Alert, AlertEvent
from cityops.playlist import (MAX_HELD, Hold, NewAlert, PlaylistEntry, WallConfig, WallConfigError,
                              current_hold, entry_at, latest_event, load_wall_config, new_alerts, open_firing,
                              read_watch, schedule_holds, slot_at, watch_data)
from cityops.scope import Viewer, scope_of_unit
from cityops.settings import DATA_DIR, Settings
from cityops.storage import indicator_ids, sync_indicators
from cityops.tree import load_tree

HOLD = 120


def write(tmp_path, text: str):
    path = tmp_path / "wall.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------
# The file
# ------------------------------------------------------------------------------------------------


def test_the_shipped_file_loads_and_the_setting_points_to_it(catalog):
    config = load_wall_config(DATA_DIR / "wall.yaml", catalog)
    assert config.dwell_seconds == 45 and config.hold_seconds == 120
    assert config.playlist[0] == PlaylistEntry(None, "hotline_complaints")
    assert PlaylistEntry("990101", "hotline_complaints") in config.playlist
    assert Settings().wall_path == DATA_DIR / "wall.yaml"
    assert Settings.from_env({"ONESCREEN_WALL": "/srv/wall-b.yaml"}).wall_path.as_posix() == "/srv/wall-b.yaml"


def test_entries_name_an_indicator_a_unit_or_both(tmp_path, catalog):
    path = write(tmp_path, "dwell: 2m\nalert_hold: 30s\nplaylist:\n  - indicator: aqi\n  - unit: '990101'\n"
                           "  - {unit: 990102, indicator: noise}\n")
    config = load_wall_config(path, catalog)
    assert config == WallConfig(120, 30, (PlaylistEntry(None, "aqi"), PlaylistEntry("990101", None),
                                          PlaylistEntry("990102", "noise")))
    assert load_wall_config(write(tmp_path, "playlist:\n  - indicator: aqi\n"), catalog).dwell_seconds == 60


@pytest.mark.parametrize("text, message", [
    ("playlist:\n  - indicator: aqi2\n", "playlist entry #1: indicator 'aqi2' is not in the catalog"),
    ("playlist:\n  - indicator: aqi\n  - {}\n", "playlist entry #2: expected a mapping with indicator: and/or unit:"),
    ("playlist:\n  - indicator: aqi\n    units: '990101'\n", "playlist entry #1: unknown field(s) units"),
    ("playlist:\n  - unit: true\n", "playlist entry #1: unit True must be a unit code, quoted"),
    ("dwell: 2s\nplaylist:\n  - indicator: aqi\n", "dwell: '2s' is too short for a wall to settle; use 5s or more"),
    ("alert_hold: soon\nplaylist:\n  - indicator: aqi\n", "alert_hold: 'soon' is not a duration"),
    ("dwell: 1m\n", "expected a top-level 'playlist:' list"),
    ("playlist: []\n", "playlist is empty"),
    ("playlist:\n  - indicator: aqi\nspeed: 2\n", "unknown top-level entry speed"),
    ("playlist: [\n", "not valid YAML"),
])
def test_a_file_that_cannot_be_used_names_the_file_the_entry_and_the_fix(tmp_path, catalog, text, message):
    path = write(tmp_path, text)
    with pytest.raises(WallConfigError) as error:
        load_wall_config(path, catalog)
    assert str(error.value).startswith(str(path)) and message in str(error.value)


def test_a_missing_file_says_how_to_point_to_one(tmp_path, catalog):
    with pytest.raises(WallConfigError, match="file not found; set ONESCREEN_WALL or restore data/wall.yaml"):
        load_wall_config(tmp_path / "absent.yaml", catalog)


# ------------------------------------------------------------------------------------------------
# The clock
# ------------------------------------------------------------------------------------------------


def test_every_wall_shows_the_same_entry_at_the_same_moment():
    config = WallConfig(60, HOLD, tuple(PlaylistEntry(None, key) for key in ("a", "b", "c")))
    # 1_800_000_000 s is slot 30_000_000, 0 modulo 3: "a"; then one entry a minute, round and round.
    assert [entry_at(config, slot_at(1_800_000_000 + 60 * k, 60)).indicator for k in range(5)] == \
        ["a", "b", "c", "a", "b"]
    # Anywhere within the minute is the same slot: walls whose clocks tick at different moments agree.
    assert slot_at(1_800_000_059.9, 60) == slot_at(1_800_000_000, 60) == 30_000_000
    assert slot_at(1_800_000_060, 60) == 30_000_001


@given(st.floats(min_value=0, max_value=4e9), st.integers(min_value=5, max_value=3600),
       st.integers(min_value=1, max_value=20))
def test_the_position_is_floor_of_epoch_over_dwell_modulo_the_entries(epoch, dwell, size):
    config = WallConfig(dwell, HOLD, tuple(PlaylistEntry(None, str(i)) for i in range(size)))
    assert entry_at(config, slot_at(epoch, dwell)).indicator == str(int(epoch // dwell) % size)


# ------------------------------------------------------------------------------------------------
# Holds
# ------------------------------------------------------------------------------------------------

NOW = 1_800_000_000


def test_a_new_alert_holds_the_wall_then_the_playlist_resumes():
    holds = schedule_holds([], [NewAlert(7, "warning", 100)], NOW, HOLD)
    assert holds == [Hold(7, "warning", NOW + HOLD)]
    assert current_hold(holds, NOW + HOLD - 1) == holds[0]
    assert current_hold(holds, NOW + HOLD) is None  # over: the playlist is back, where the clock says
    assert schedule_holds(holds, [], NOW + HOLD, HOLD) == []


def test_several_new_alerts_the_most_severe_first_then_in_the_order_they_fired():
    new = [NewAlert(1, "warning", 10), NewAlert(2, "critical", 11), NewAlert(3, "warning", 12),
           NewAlert(4, "critical", 13)]
    holds = schedule_holds([], new, NOW, HOLD)
    assert [(h.alert, h.until) for h in holds] == [(2, NOW + HOLD), (4, NOW + 2 * HOLD), (1, NOW + 3 * HOLD),
                                                   (3, NOW + 4 * HOLD)]
    assert [current_hold(holds, NOW + k * HOLD).alert for k in range(4)] == [2, 4, 1, 3]


def test_a_critical_alert_cuts_short_a_warning_being_shown_which_waits_its_turn_again():
    shown = schedule_holds([], [NewAlert(1, "warning", 10)], NOW, HOLD)
    later = schedule_holds(shown, [NewAlert(2, "critical", 11)], NOW + 30, HOLD)
    assert later == [Hold(2, "critical", NOW + 30 + HOLD), Hold(1, "warning", NOW + 30 + 2 * HOLD)]
    # A warning arriving while another is shown waits: the one shown keeps its time.
    queued = schedule_holds(shown, [NewAlert(3, "warning", 12)], NOW + 30, HOLD)
    assert queued == [Hold(1, "warning", NOW + HOLD), Hold(3, "warning", NOW + 2 * HOLD)]


def test_an_escalation_while_shown_keeps_the_hold_and_a_closed_alert_never_gets_its_turn():
    shown = schedule_holds([], [NewAlert(1, "warning", 10), NewAlert(2, "warning", 11)], NOW, HOLD)
    escalated = schedule_holds(shown, [NewAlert(1, "critical", 12)], NOW + 5, HOLD)
    assert escalated == [Hold(1, "critical", NOW + HOLD), Hold(2, "warning", NOW + 2 * HOLD)]
    assert schedule_holds(escalated, [], NOW + 6, HOLD, still_open={1}) == [Hold(1, "critical", NOW + HOLD)]


@settings(max_examples=200)
@given(st.lists(st.lists(st.tuples(st.integers(1, 30), st.sampled_from(["warning", "critical"])), max_size=12),
                max_size=25),
       st.integers(min_value=5, max_value=600))
def test_holds_stay_bounded_back_to_back_and_never_repeat_an_alert(polls, hold_seconds):
    holds: list[Hold] = []
    now, event = NOW, 0
    for found in polls:
        new = []
        for alert, severity in found:
            event += 1
            new.append(NewAlert(alert, severity, event))
        holds = schedule_holds(holds, new, now, hold_seconds)
        assert len(holds) <= MAX_HELD
        assert len({h.alert for h in holds}) == len(holds)
        assert all(h.until > now for h in holds)
        assert all(b.until - a.until == hold_seconds for a, b in zip(holds, holds[1:]))
        waiting = holds[1:]
        assert [h.severity for h in waiting] == sorted((h.severity for h in waiting),
                                                        key=lambda s: s != "critical")
        now += 7


# ------------------------------------------------------------------------------------------------
# What a wall's page sends back
# ------------------------------------------------------------------------------------------------


def test_the_watch_round_trips_and_anything_malformed_is_dropped():
    holds = [Hold(5, "critical", NOW + 60), Hold(6, "warning", NOW + 180)]
    data = json.loads(json.dumps(watch_data(41, holds, NOW)))
    assert read_watch(data, NOW, HOLD) == (41, holds)
    assert read_watch(None, NOW, HOLD) == (None, [])
    assert read_watch({"seen": "41", "holds": "x"}, NOW, HOLD) == (None, [])
    assert read_watch({"seen": True, "holds": [{"alert": 1, "severity": "fatal", "until": NOW}]}, NOW, HOLD) == \
        (None, [])
    flood = {"seen": 3, "holds": [{"alert": i, "severity": "critical", "until": NOW + 10**9} for i in range(1, 99)]}
    seen, kept = read_watch(flood, NOW, HOLD)
    assert seen == 3 and len(kept) == MAX_HELD and max(h.until for h in kept) == NOW + MAX_HELD * HOLD


# ------------------------------------------------------------------------------------------------
# What the wall has not seen (SQLite and PostgreSQL)
# ------------------------------------------------------------------------------------------------

RULES = """rules:
  - name: wall-test
    type: threshold
    indicators: [fire_alarms, hotline_complaints]
    levels: [community]
"""


def fire(city_db, config, code: str, key: str, rank: int, now: int) -> int:
    with city_db.session() as session:
        writer = AlertWriter(session, config, now)
        writer.add(config.rules[0], city_db.indicator_ids[key],
                   Judged.of([city_db.unit_ids[code]], [now - 60], [rank], [9.0], [4.0]))
        writer.flush()
        return session.scalar(select(Alert.id).where(Alert.unit_id == city_db.unit_ids[code],
                                                     Alert.indicator_id == city_db.indicator_ids[key]))


def test_new_alerts_are_those_fired_or_escalated_after_the_watermark_in_scope(city_db, catalog, tmp_path):
    (tmp_path / "alerts.yaml").write_text(RULES, encoding="utf-8")
    config = load_alert_config(tmp_path / "alerts.yaml", catalog, environ={})
    with city_db.session() as session:
        tree = load_tree(session)
        city, district_1 = scope_of_unit(tree, tree.root_id), scope_of_unit(tree, city_db.unit_ids["990101"])
        assert latest_event(session) == 0
    before = fire(city_db, config, "990101001001", "hotline_complaints", 1, NOW - 600)
    with city_db.session() as session:
        seen = latest_event(session)
        assert new_alerts(session, city, 0) == ([NewAlert(before, "warning", seen)], seen)
    warning = fire(city_db, config, "990101001002", "fire_alarms", 1, NOW)
    critical = fire(city_db, config, "990102001001", "fire_alarms", 2, NOW)
    with city_db.session() as session:
        found, latest = new_alerts(session, city, seen)
        assert [(a.alert, a.severity) for a in found] == [(critical, "critical"), (warning, "warning")]
        assert latest == latest_event(session) > seen
        # A viewer of district 1 does not see district 2's alert; nothing after the newest event is new.
        assert [a.alert for a in new_alerts(session, district_1, seen)[0]] == [warning]
        assert new_alerts(session, city, latest) == ([], latest)
    # The warning escalates: new again, now critical. Closed alerts are not.
    escalated = fire(city_db, config, "990101001002", "fire_alarms", 2, NOW + 60)
    assert escalated == warning
    with city_db.session() as session:
        session.execute(insert(AlertEvent).values(alert_id=critical, at=NOW, actor="王", action="closed"))
        session.get(Alert, critical).closed_at = NOW + 61
    with city_db.session() as session:
        assert [(a.alert, a.severity) for a in new_alerts(session, city, latest)[0]] == [(warning, "critical")]
        assert open_firing(session, [warning, critical, 999]) == {warning}


# ------------------------------------------------------------------------------------------------
# The callbacks: what a wall's page may and may not make the wall show
# ------------------------------------------------------------------------------------------------

WALL_FILE = """dwell: 10s
alert_hold: 30s
playlist:
  - indicator: aqi
  - {unit: "990102", indicator: noise}
  - {unit: "990199", indicator: fire_alarms}
"""


@pytest.fixture(scope="module")
def wall_app(tmp_path_factory, catalog):
    """The app on the tiny city, with a three-entry playlist (its third unit does not exist) and one rule."""
    from app import create_app

    folder = tmp_path_factory.mktemp("wall_app")
    (folder / "wall.yaml").write_text(WALL_FILE, encoding="utf-8")
    (folder / "alerts.yaml").write_text(RULES, encoding="utf-8")
    settings = replace(Settings(), database_url=f"sqlite:///{folder / 'db.sqlite'}", run_scheduler=False,
                       alerts_path=folder / "alerts.yaml", wall_path=folder / "wall.yaml")
    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        replace_units(session, tiny_city())
        sync_indicators(session, catalog)
    return create_app(settings)


def in_request(app, function, *args):
    with app.server.test_request_context("/_dash-update-component", method="POST"):
        return function(*args)


def text_of(component) -> str:
    if isinstance(component, str):
        return component
    children = getattr(component, "children", None)
    children = children if isinstance(children, list) else [children] if children is not None else []
    return "".join(text_of(child) for child in children)


def raise_alert(app, catalog, code: str, key: str, rank: int) -> int:
    settings = app.server.config["ONESCREEN"].settings
    config = load_alert_config(settings.alerts_path, catalog, environ={})
    now = int(time.time())
    with session_scope(settings.database_url) as session:
        ids, units = indicator_ids(session, catalog), load_tree(session).id_by_code
        writer = AlertWriter(session, config, now)
        writer.add(config.rules[0], ids[key], Judged.of([units[code]], [now - 60], [rank], [9.0], [4.0]))
        writer.flush()
        return session.scalar(select(Alert.id).where(Alert.unit_id == units[code], Alert.indicator_id == ids[key]))


def test_the_cue_shows_the_playlist_entry_of_its_slot_and_a_unit_out_of_sight_shows_the_scope(wall_app,
                                                                                                monkeypatch):
    wall = sys.modules["callbacks.wall"]
    selection = {"unit": None, "indicator": "aqi", "range": "24h", "start": None, "end": None, "compare": True}
    shown, status = in_request(wall_app, wall.show_cue, {"slot": 30_000_001}, selection, None)
    # Only unit and indicator change: the rest of the selection (the trend's range) stays as it was.
    assert shown == {**selection, "unit": "990102", "indicator": "noise"}
    assert status.children[1] == "轮播 2/3" and status.to_plotly_json()["props"]["data-slot"] == "30000001"
    assert in_request(wall_app, wall.show_cue, {"slot": 30_000_003}, selection, None)[0] is no_update  # entry 1
    unknown, _status = in_request(wall_app, wall.show_cue, {"slot": 30_000_002}, selection, None)
    assert unknown == {**selection, "unit": None, "indicator": "fire_alarms"}  # no such unit: the viewer's scope
    # A viewer of district 1 never sees district 2: that entry shows their own scope.
    monkeypatch.setattr(sys.modules["callbacks.context"], "current_viewer", lambda: Viewer(root_code="990101"))
    assert in_request(wall_app, wall.show_cue, {"slot": 1}, selection, None)[0] == \
        {**selection, "unit": None, "indicator": "noise"}
    # Nonsense from the page: the slot of the server's clock.
    for forged in ({"slot": "1; DROP"}, {"slot": True}, "x", None, {"alert": 10**30}):
        shown, status = in_request(wall_app, wall.show_cue, forged, selection, None)
        assert status.children[1].startswith("轮播 ")


def test_only_an_alert_the_wall_holds_and_the_viewer_sees_moves_the_wall(wall_app, catalog, monkeypatch):
    wall = sys.modules["callbacks.wall"]
    alert = raise_alert(wall_app, catalog, "990102001002", "fire_alarms", 2)
    selection = {"unit": None, "indicator": "aqi"}
    now = int(time.time())
    watch = {"seen": 0, "holds": [{"alert": alert, "severity": "critical", "until": now + 30}], "now": now}
    shown, status = in_request(wall_app, wall.show_cue, {"alert": alert}, selection, watch)
    assert shown == {"unit": "990102001002", "indicator": "fire_alarms"}
    assert status.to_plotly_json()["props"]["data-alert"] == str(alert) and "新告警 · 轮播暂停至" in text_of(status)
    # An alert the wall does not hold (a page making things up) does not move it; nor one out of the viewer's sight.
    assert "data-slot" in in_request(wall_app, wall.show_cue, {"alert": alert}, selection, {"holds": []})[1] \
        .to_plotly_json()["props"]
    monkeypatch.setattr(sys.modules["callbacks.context"], "current_viewer", lambda: Viewer(root_code="990101"))
    assert "data-slot" in in_request(wall_app, wall.show_cue, {"alert": alert}, selection, watch)[1] \
        .to_plotly_json()["props"]


def test_the_watch_starts_at_the_newest_event_and_holds_what_fires_after_it(wall_app, catalog):
    wall = sys.modules["callbacks.wall"]
    raise_alert(wall_app, catalog, "990101001001", "hotline_complaints", 1)
    started, plan = in_request(wall_app, wall.watch_alerts, 1, {"seen": "garbage"}, None)
    assert started["holds"] == [] and started["seen"] > 0 and plan["dwell"] == 10  # what fired before: seen
    assert in_request(wall_app, wall.watch_alerts, 2, started, plan) == (no_update, no_update)  # nothing new
    fresh = raise_alert(wall_app, catalog, "990101002001", "fire_alarms", 2)
    watched, _plan = in_request(wall_app, wall.watch_alerts, 3, started, plan)
    assert [hold["alert"] for hold in watched["holds"]] == [fresh] and watched["seen"] > started["seen"]
    assert watched["holds"][0]["until"] - watched["now"] == 30


def test_a_broken_wall_file_is_reported_once_and_the_wall_shows_the_scope(wall_app, caplog, tmp_path):
    wall = sys.modules["callbacks.wall"]
    settings = wall_app.server.config["ONESCREEN"].settings
    original = settings.wall_path.read_text(encoding="utf-8")
    try:
        settings.wall_path.write_text("playlist:\n  - indicator: nothing_here\n", encoding="utf-8")
        for _ in range(3):
            shown, status = in_request(wall_app, wall.show_cue, {"slot": 1}, {"unit": "990101", "indicator": "aqi"},
                                       None)
        assert shown == {"unit": None, "indicator": "hotline_complaints"}
        assert text_of(status) == "轮播配置有误，见服务器日志"
        errors = [r.getMessage() for r in caplog.records if "playlist is off" in r.getMessage()]
        assert len(errors) == 1 and "playlist entry #1: indicator 'nothing_here'" in errors[0]
    finally:
        settings.wall_path.write_text(original, encoding="utf-8")
    assert in_request(wall_app, wall.show_cue, {"slot": 1}, {"unit": None, "indicator": "aqi"}, None)[0] == \
        {"unit": "990102", "indicator": "noise"}  # the file mended: the playlist is back


# ------------------------------------------------------------------------------------------------
# The stale mark every data panel uses (layouts/kpi.py; the wall makes it read from across the room)
# ------------------------------------------------------------------------------------------------


def test_the_as_of_mark_says_stale_and_since_when_in_both_languages():
    from layouts.freshness import as_of_mark

    at = NOW - 3 * 3600
    fresh = as_of_mark(at, False, "Asia/Shanghai", NOW, "zh").to_plotly_json()["props"]
    stale = as_of_mark(at, True, "Asia/Shanghai", NOW, "en", "kpi-asof").to_plotly_json()["props"]
    assert (fresh["children"], fresh["className"], fresh["data-stale"]) == ("截至 13:00", "as-of-mark", "false")
    assert (stale["children"], stale["className"], stale["data-stale"]) == \
        ("stale · as of 13:00", "as-of-mark stale kpi-asof", "true")
