"""Alert rules from YAML: the shipped file loads, and every mistake names the file, the rule and the fix."""

from __future__ import annotations

import pytest

from cityops.alerts.judgements import Worse
from cityops.alerts.rules import RuleError, RuleType, load_alert_config, load_rules
from cityops.hierarchy import Level
from cityops.settings import DATA_DIR


def write(tmp_path, text: str):
    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n" + text, encoding="utf-8")
    return path


def test_the_shipped_rules_load_and_cover_every_rule_type(catalog):
    config = load_alert_config(DATA_DIR / "alerts.yaml", catalog, environ={})
    rules = {rule.name: rule for rule in config.rules}
    assert {rule.type for rule in rules.values()} == set(RuleType)
    everything = rules["over-threshold"]
    assert "waterlogging_depth" not in everything.indicators and "aqi" in everything.indicators
    assert "hotline_complaints_district" not in everything.indicators  # judged against its communities instead
    assert everything.keep_firing_for == 7200
    assert rules["community-critical"].options["from_severity"] == "critical"
    assert rules["source-silent"].sources == ("all",) and rules["source-silent"].watches("city-simulator")
    assert rules["district-count-mismatch"].options["reported"] == "hotline_complaints_district"
    assert config.deadlines["critical"].dispatch == 900 and config.notifications.webhooks == ()
    assert all(rule.described("zh") and rule.described("en") for rule in config.rules)
    assert rules["community-critical"].described("zh").startswith("社区")
    assert rules["community-critical"].described("en").startswith("A community")
    assert rules["waterlogging-sustained"].for_seconds == 1200
    surge = rules["hotline-surge"]
    assert surge.levels_for(catalog["hotline_complaints"]) == (Level.DISTRICT, Level.STREET)
    assert surge.worse(catalog["hotline_complaints"]) is Worse.UP
    assert rules["pm25-unusual"].options["weeks"] == 4


def test_default_levels_follow_the_indicator(catalog, tmp_path):
    path = write(tmp_path, "  - {name: a, type: threshold, indicator: aqi}\n"
                           "  - {name: b, type: no_data, indicator: aqi}\n")
    threshold, silence = load_rules(path, catalog)
    assert threshold.levels_for(catalog["aqi"]) == tuple(sorted(catalog["aqi"].thresholds))
    assert Level.COMMUNITY not in silence.levels_for(catalog["aqi"])  # AQI is measured per street


@pytest.mark.parametrize("entry, message", [
    ("- {name: a, type: threshold}", "give either indicator"),
    ("- {name: a, type: surge, indicator: aqi}", "type must be one of"),
    ("- {name: a, type: threshold, indicator: aqii}", "unknown indicator(s) aqii"),
    ("- {name: a, type: threshold, indicator: aqi, warning_pct: 5}", "unknown option(s) warning_pct"),
    ("- {name: a, type: rate_of_change, indicator: aqi, warning_pct: 5}", "needs critical_pct"),
    ("- {name: a, type: rate_of_change, indicator: aqi, warning_pct: 50, critical_pct: 20}",
     "warning_pct must be above 0 and at most critical_pct"),
    ("- {name: a, type: rate_of_change, indicator: aqi, warning_pct: 5, critical_pct: 9, compare: yesterday}",
     "compare must be previous_period or same_hour_last_week"),
    ("- {name: a, type: anomaly, indicator: aqi, weeks: 0}", "weeks must be a number of at least 1"),
    ("- {name: a, type: threshold, indicator: aqi, for: soon}", "for:"),
    ("- {name: a, type: threshold, indicator: aqi, levels: [county]}", "levels must name some of"),
    ("- {name: a, type: consistency, indicator: aqi, reported: nope, warning_pct: 1, critical_pct: 2}",
     "reported names unknown indicator 'nope'"),
    ("- {name: a, type: threshold, indicators: all, except: [nope]}", "except must list catalog keys"),
    ("- {name: a, type: threshold, indicator: aqi}\n  - {name: a, type: no_data, indicator: aqi}", "duplicate name"),
])
def test_mistakes_name_the_file_the_rule_and_the_fix(catalog, tmp_path, entry, message):
    path = write(tmp_path, "  " + entry + "\n")
    with pytest.raises(RuleError) as error:
        load_rules(path, catalog)
    assert str(path) in str(error.value) and "rule 'a'" in str(error.value)
    assert message in str(error.value)


def test_a_missing_or_broken_file_says_so(catalog, tmp_path):
    with pytest.raises(RuleError, match="file not found"):
        load_rules(tmp_path / "nope.yaml", catalog)
    (tmp_path / "bad.yaml").write_text("rules: [", encoding="utf-8")
    with pytest.raises(RuleError, match="not valid YAML"):
        load_rules(tmp_path / "bad.yaml", catalog)


@pytest.mark.parametrize("text,problem", [
    ("  - {name: s, type: threshold, sources: all}\n", "sources: goes with a no_data rule"),
    ("  - {name: s, type: no_data, sources: all, indicator: aqi}\n", "takes no indicator"),
    ("  - {name: s, type: no_data, sources: []}\n", "sources must be all or a list"),
    ("  - {name: s, type: threshold, indicator: aqi, from_severity: severe}\n", "from_severity must be warning or"),
])
def test_source_and_severity_options_are_checked(catalog, tmp_path, text, problem):
    with pytest.raises(RuleError, match=problem):
        load_rules(write(tmp_path, text), catalog)


@pytest.mark.parametrize("text,problem", [
    ("deadlines: {critical: {dispatch: 4h, handle: 15m}}\n", "deadlines: critical: dispatch must come before"),
    ("deadlines: {urgent: {dispatch: 1m, handle: 1h}}\n", "deadlines: expected critical: and/or warning:"),
    ("auto_close_after: soon\n", "auto_close_after: 'soon' is not a duration"),
    ("escalation: {}\n", "unknown top-level entry escalation"),
])
def test_the_rest_of_the_alerts_file_is_checked(catalog, tmp_path, text, problem):
    path = write(tmp_path, "  - {name: a, type: threshold, indicator: aqi}\n")
    path.write_text(path.read_text() + text)
    with pytest.raises(RuleError, match=problem) as error:
        load_alert_config(path, catalog, environ={})
    assert str(path) in str(error.value)
