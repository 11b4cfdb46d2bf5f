"""The deployment's alert work end to end: a connector run through the scheduler raises an alert from what it
stored, a real local webhook receiver is told once, and the `onescreen alerts` commands report it."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from webhook_receiver import Receiver
from click.testing import CliRunner
from sqlalchemy import select

from cityops.alerts.notify import verify_signature
from cityops.models import Alert, AlertNotification, ConnectorRun
from cityops.settings import Settings
from connectors.scheduler import start_scheduler
from onescreen import cli

COMMUNITY = "990101001001"
SECRET = "s3cret"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def deployment(sqlite_city_db, tmp_path, monkeypatch, receiver):
    """The tiny city, a drop folder connector, one threshold rule with a webhook, and the settings for them."""
    drops = tmp_path / "drops"
    drops.mkdir()
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(f"""connectors:
  - name: street-office-drops
    type: drop_folder
    levels: [community]
    schedule: {{interval: 10m}}
    config: {{folder: "{drops}", settle_seconds: 0}}
    mapping: {{unit_code: 社区代码, observed_at: 时间, indicator: 指标, value: 数值,
               indicator_names: {{热线投诉: hotline_complaints}}}}
""", encoding="utf-8")
    rules = tmp_path / "alerts.yaml"
    rules.write_text(f"""rules:
  - name: hotline-at-once
    type: threshold
    indicator: hotline_complaints
    levels: [community]
notifications:
  webhooks:
    - name: dispatch
      url: {receiver.url()}
      secret_env: TEST_WEBHOOK_SECRET
""", encoding="utf-8")
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("ONESCREEN_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", sqlite_city_db.url)
    monkeypatch.setenv("ONESCREEN_CONNECTORS", str(connectors))
    monkeypatch.setenv("ONESCREEN_ALERT_RULES", str(rules))
    settings = replace(Settings(), database_url=sqlite_city_db.url, connectors_path=connectors, alerts_path=rules,
                       archive_dir=tmp_path / "archive")
    return settings, drops


def drop_report(drops, value: float, at: float) -> None:
    moment = datetime.fromtimestamp(at, ZoneInfo("Asia/Shanghai"))
    (drops / f"report-{int(at)}.csv").write_text(
        f"社区代码,时间,指标,数值\n{COMMUNITY},{moment:%Y-%m-%d %H:%M:%S},热线投诉,{value}\n", encoding="utf-8")


def test_a_run_that_stores_a_breach_raises_its_alert_and_notifies_once(deployment, receiver, sqlite_city_db):
    settings, drops = deployment
    drop_report(drops, 9, time.time() - 60)
    handle = start_scheduler(settings, first_run_delay=3600)
    try:
        handle.jobs.run("street-office-drops")
        with sqlite_city_db.session() as session:
            alert = session.scalars(select(Alert)).one()
            run_id = session.scalar(select(ConnectorRun.id))
            sent = session.scalars(select(AlertNotification)).one()
            assert (alert.phase, alert.severity, alert.value, alert.run_id) == ("firing", "critical", 9.0, run_id)
            assert (sent.status, sent.attempts, sent.change) == ("delivered", 1, "firing")
        (request,) = receiver.requests
        headers, body = request["headers"], request["body"]
        assert verify_signature(SECRET, headers["X-OneScreen-Timestamp"], body, headers["X-OneScreen-Signature"])
        assert json.loads(body)["unit"]["code"] == COMMUNITY
        # The next run brings nothing new; the minute's tick evaluates silence: nobody is told twice.
        handle.jobs.run("street-office-drops")
        handle.jobs.alerts.tick()
        assert len(receiver.requests) == 1
    finally:
        handle.shutdown()


def test_the_alerts_commands_check_evaluate_and_list(deployment, sqlite_city_db):
    settings, drops = deployment
    runner = CliRunner()
    checked = runner.invoke(cli, ["alerts", "check"])
    assert checked.exit_code == 0, checked.output
    assert "hotline-at-once" in checked.output and "1 webhook(s)" in checked.output
    drop_report(drops, 9, time.time() - 60)
    assert runner.invoke(cli, ["run", "street-office-drops"]).exit_code == 0  # a run alone does not evaluate
    evaluated = runner.invoke(cli, ["alerts", "evaluate", "--all-indicators"])
    assert evaluated.exit_code == 0 and "1 firing" in evaluated.output
    listed = runner.invoke(cli, ["alerts", "list", "--unit", "990101"])
    assert listed.exit_code == 0 and COMMUNITY in listed.output and "critical" in listed.output
    assert "no open alerts" in runner.invoke(cli, ["alerts", "list", "--unit", "990102"]).output
    settings.alerts_path.write_text("rules:\n  - {name: x, type: threshold, indicator: no_such_thing}\n",
                                    encoding="utf-8")
    broken = runner.invoke(cli, ["alerts", "check"])
    assert broken.exit_code != 0
    assert str(settings.alerts_path) in broken.output and "rule 'x'" in broken.output
    assert "unknown indicator(s) no_such_thing" in broken.output
