"""The MQTT source for bench/connector_types.py: readings published beforehand to the connector's persistent
session on a private mosquitto.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from source_servers import close_session, connect, mqtt_client, open_session, start_broker  # noqa: E402
from sources_records import Plan, Source, time_texts  # noqa: E402

MQTT_PER_MESSAGE = 100  # readings per message (a JSON list): 1 M readings are 10,000 messages


def build_mqtt(plan: Plan, folder: Path) -> Source:
    """A private mosquitto holding the planned readings, in QoS 1 messages of JSON lists, in the connector's
    persistent session (created first, as the connector's first run would)."""
    import uuid

    port, broker = start_broker(folder)
    client_id = f"onescreen-bench-{uuid.uuid4().hex[:12]}"
    topic = f"onescreen-bench/{client_id}/readings"
    try:
        open_session(port, client_id, topic)
        messages = publish_readings(plan, port, f"{client_id}-publisher", topic)
    except BaseException:
        common.stop_process(broker)
        raise
    entry = {"name": "bench-mqtt", "type": "mqtt", "levels": ["community", "street"],
             "schedule": {"interval": "1m"}, "timeout": "30m",
             "config": {"host": "127.0.0.1", "port": port, "topics": [topic], "client_id": client_id,
                        "session_expiry_seconds": 3600, "drain_seconds": 1200, "idle_seconds": 1},
             "mapping": {"unit_code": "unit_code", "observed_at": "time", "indicator": "indicator",
                         "value": "value"}}
    return Source(entry, plan.records, server=broker, noun="readings",
                  detail=f" in {messages:,} QoS 1 messages, each a JSON list of {MQTT_PER_MESSAGE}",
                  note=f"mqtt: the same records as the file, database and API sources, as readings "
                       f"({{unit_code, indicator, time (ISO with offset), value}}) in QoS 1 messages each holding a "
                       f"JSON list of {MQTT_PER_MESSAGE} ({messages:,} messages at {plan.records:,}), published "
                       f"before the run to the connector's persistent session on a private mosquitto 2.0 "
                       f"(max_queued_messages 0, no persistence) on a free port, the session created first by "
                       f"connecting with the connector's client id and removed after the run; the run receives "
                       f"them all in one connection (Receive Maximum 65,535), acknowledges them after its commit "
                       f"and stops once no message came for idle_seconds (1 s, the default: its time includes up "
                       f"to 1 s of waiting when it reads faster than the broker delivers)",
                  cleanups=[lambda: close_session(port, client_id)])


def publish_readings(plan: Plan, port: int, client_id: str, topic: str) -> int:
    """Publish the plan's records as JSON lists of MQTT_PER_MESSAGE readings, QoS 1, each acknowledged by the
    broker; returns how many messages."""
    publisher = mqtt_client(client_id)
    publisher.max_inflight_messages_set(0)  # no window: the broker acknowledges as fast as it stores
    connect(publisher, port)
    messages = 0
    try:
        for frame in plan.frames():
            rows = pd.DataFrame({
                "unit_code": frame["unit_code"], "indicator": frame["indicator"],
                "time": time_texts(frame["observed_at"], plan.city.timezone, lambda t: t.isoformat()),
                "value": frame["value"]})
            sent = [publisher.publish(topic, rows.iloc[start:start + MQTT_PER_MESSAGE].to_json(
                        orient="records", force_ascii=False).encode("utf-8"), qos=1)
                    for start in range(0, len(rows), MQTT_PER_MESSAGE)]
            for info in sent:
                info.wait_for_publish(timeout=60)
                if not info.is_published():
                    raise RuntimeError(f"mosquitto did not acknowledge message {info.mid} within 60 s")
            messages += len(sent)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    if messages > 65_535:
        raise RuntimeError(f"{messages:,} messages: more than one run takes (max_messages ≤ 65,535); raise "
                           f"MQTT_PER_MESSAGE")
    return messages
