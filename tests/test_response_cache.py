"""The shared response cache: N screens asking the same question cost one query; a write, another scope, another
language or the next refresh cycle get a fresh answer; actions are never cached. In memory and in the real local
Redis (127.0.0.1:6379)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid

import pytest
from dash import ALL, Dash, Input, Output, ctx, html
from sqlalchemy import event, text

from callbacks.cached_callbacks import EXTENSION, install_response_cache, unread_parameters
from cityops.db import engine_for, migrate, session_scope
from cityops.request_basics import LazySession, RequestBasics
from cityops.response_cache import DataVersion, MemoryStore, ResponseCache, Stored, cache_for
from cityops.scope import Viewer
from cityops.settings import Settings
from layouts.ids import PageIds

REDIS_URL = "redis://127.0.0.1:6379/0"


class QueryCounter:
    """Counts the statements reading the `units` table (what the test callbacks read)."""

    def __init__(self, engine):
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)
        self.engine = engine

    def _seen(self, _connection, _cursor, statement, *_args):
        if "FROM units" in statement:
            self.count += 1

    def close(self):
        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture(params=["memory", "redis"])
def cache_url(request):
    return None if request.param == "memory" else REDIS_URL


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / f'cache-{uuid.uuid4().hex[:8]}.db'}"
    migrate(url)
    return url


def make_app(database: str, cache_url: str | None):
    """A small Dash app with one refresh-driven panel, one that reads its tick, one that sets a cookie and one
    action, behind the response cache, as create_app installs it."""
    settings = Settings(database_url=database, run_scheduler=False, refresh_seconds=30, cache_url=cache_url)
    app = Dash(__name__)
    app.layout = html.Div()

    def units_count() -> int:
        with session_scope(database) as session:
            return int(session.scalar(text("SELECT count(*) FROM units")))

    @app.callback(Output("panel", "children"), Input(PageIds.REFRESH, "n_intervals"),
                  Input(PageIds.MAP_PAINTED, "data"), Input("unit", "data"))
    def panel(_tick, _painted, unit):
        return f"{unit}:{units_count()}"

    @app.callback(Output("ticks", "children"), Input(PageIds.REFRESH, "n_intervals"))
    def ticks(_tick):
        units_count()
        return f"tick {_tick}"  # reads its "unused" tick: its value must stay in the key

    @app.callback(Output("cookie", "children"), Input(PageIds.REFRESH, "n_intervals"))
    def cookie(_tick):
        units_count()
        ctx.response.set_cookie("seen", "1")
        return "cookie"

    @app.callback(Output({"type": "graph", "panel": ALL}, "children"), Output("graph-title", "children"),
                  Input(PageIds.REFRESH, "n_intervals"))
    def graphs(_tick):
        # As the trend: its title always, its graph once mounted (dash.ALL matches nothing before).
        units_count()
        return ["drawn"] * len(ctx.outputs_list[0]), "title"

    @app.callback(Output("message", "children"), Input("act", "n_clicks"))
    def act(clicks):
        units_count()
        return f"done {clicks}"

    install_response_cache(app, settings)
    return app


def body(output: str, inputs: list[tuple[str, str, object]], trigger: str | None = None) -> dict:
    component, prop = output.split(".")
    return {"output": output, "outputs": {"id": component, "property": prop},
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
            "changedPropIds": [trigger or f"{inputs[0][0]}.{inputs[0][1]}"], "state": []}


def panel_body(tick: int, painted: float, unit: str = "A") -> dict:
    return body("panel.children", [(PageIds.REFRESH, "n_intervals", tick), (PageIds.MAP_PAINTED, "data", painted),
                                   ("unit", "data", unit)])


def post(client, payload, language=None):
    if language:
        client.set_cookie("onescreen-language", language)
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200, response.data
    return response


@pytest.fixture
def served(database, cache_url):
    app = make_app(database, cache_url)
    counter = QueryCounter(engine_for(database))
    yield app, counter
    counter.close()


def test_a_page_with_the_graph_mounted_is_not_given_the_answer_of_one_without(served):
    """The trend's title and graph come in one answer, the graph matched with dash.ALL: a page that has not mounted
    it yet gets an answer without it, which must not be served to a wall that has (its chart stayed on the last
    playlist step's indicator under the new title)."""
    app, counter = served
    output = '..{"panel":["ALL"],"type":"graph"}.children...graph-title.children..'

    def asked(mounted: int) -> dict:
        return {"output": output, "inputs": [{"id": PageIds.REFRESH, "property": "n_intervals", "value": 1}],
                "outputs": [[{"id": {"type": "graph", "panel": "trend"}, "property": "children"}] * mounted,
                            {"id": "graph-title", "property": "children"}],
                "changedPropIds": [f"{PageIds.REFRESH}.n_intervals"], "state": []}

    before = json.loads(post(app.server.test_client(), asked(0)).data)["response"]
    after = json.loads(post(app.server.test_client(), asked(1)).data)["response"]
    assert '"drawn"' not in json.dumps(before) and '"drawn"' in json.dumps(after), (before, after)
    assert counter.count == 2
    post(app.server.test_client(), asked(1))  # another wall with its graph: the same question
    assert counter.count == 2


def test_screens_asking_the_same_question_cost_one_query(served):
    app, counter = served
    answers = {post(app.server.test_client(), panel_body(tick, painted=1000.0 + tick)).data
               for tick in range(1, 8)}  # seven screens, each its own tick count and paint time
    assert len(answers) == 1 and counter.count == 1
    post(app.server.test_client(), panel_body(1, 5.0, unit="B"))  # another unit is another question
    assert counter.count == 2


def test_a_write_changes_the_answer_at_once(served, database):
    app, counter = served
    client = app.server.test_client()
    post(client, panel_body(1, 1.0))
    post(client, panel_body(2, 1.0))
    assert counter.count == 1
    with session_scope(database) as session:  # this process writes (as the in-process scheduler would)
        session.execute(text("INSERT INTO connector_runs (connector, started_at, status, fetched, accepted, rejected, "
                             "duplicates) VALUES ('x', 1, 'ok', 0, 0, 0, 0)"))
    post(client, panel_body(3, 1.0))
    assert counter.count == 2
    post(client, panel_body(4, 1.0))
    assert counter.count == 2


def test_another_processs_write_changes_the_answer(served, database):
    app, counter = served
    client = app.server.test_client()
    post(client, panel_body(1, 1.0))
    # Another process (a separate scheduler) writes with its own connection, unseen by this process's engine.
    connection = sqlite3.connect(database.removeprefix("sqlite:///"))
    connection.execute("INSERT INTO connector_runs (connector, started_at, status, fetched, accepted, rejected, "
                       "duplicates) VALUES ('x', 1, 'ok', 0, 0, 0, 0)")
    connection.commit()
    connection.close()
    post(client, panel_body(2, 1.0))
    assert counter.count == 2


def test_scope_language_and_the_next_refresh_cycle_are_other_entries(served, monkeypatch):
    app, counter = served
    client = app.server.test_client()
    post(client, panel_body(1, 1.0))
    post(client, panel_body(1, 1.0), language="en")
    assert counter.count == 2
    monkeypatch.setattr("callbacks.context.current_viewer", lambda: Viewer("district officer", "990101"))
    post(client, panel_body(1, 1.0), language="en")
    assert counter.count == 3
    later = time.time() + 31
    monkeypatch.setattr("cityops.response_cache.time.time", lambda: later)
    post(client, panel_body(2, 1.0), language="en")
    assert counter.count == 4


def test_actions_callbacks_reading_their_tick_and_cookies_are_never_shared(served):
    app, counter = served
    client = app.server.test_client()
    for _ in range(2):
        assert b"done 1" in post(client, body("message.children", [("act", "n_clicks", 1)])).data
    assert counter.count == 2
    for tick in (1, 2, 2):
        assert f"tick {tick}".encode() in post(client, body("ticks.children",
                                                            [(PageIds.REFRESH, "n_intervals", tick)])).data
    assert counter.count == 4  # ticks 1 and 2 computed, the second 2 shared
    for _ in range(2):
        assert "seen=1" in post(client, body("cookie.children", [(PageIds.REFRESH, "n_intervals", 1)])).headers.get(
            "Set-Cookie", "")
    assert counter.count == 6


def test_concurrent_screens_wait_for_one_computation(served):
    app, counter = served
    barrier = threading.Barrier(12)
    answers = []

    def screen(tick):
        client = app.server.test_client()
        barrier.wait()
        answers.append(post(client, panel_body(tick, float(tick))).data)

    threads = [threading.Thread(target=screen, args=(tick,)) for tick in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 12 and len(set(answers)) == 1 and counter.count == 1


def test_workers_share_one_redis(database):
    """Two web workers (two apps) on one Redis: one computes, the other reads; a write in one is seen by both."""
    first, second = make_app(database, REDIS_URL), make_app(database, REDIS_URL)
    counter = QueryCounter(engine_for(database))
    try:
        assert first.server.extensions[EXTENSION].store.shared
        post(first.server.test_client(), panel_body(1, 1.0))
        post(second.server.test_client(), panel_body(2, 2.0))
        assert counter.count == 1
        with session_scope(database) as session:
            session.execute(text("INSERT INTO connector_runs (connector, started_at, status, fetched, accepted, "
                                 "rejected, duplicates) VALUES ('x', 1, 'ok', 0, 0, 0, 0)"))
        post(second.server.test_client(), panel_body(3, 3.0))
        post(first.server.test_client(), panel_body(4, 4.0))
        assert counter.count == 2
    finally:
        counter.close()


def test_a_redis_that_does_not_answer_stops_start_up_with_the_reason(database):
    with pytest.raises(ValueError, match="ONESCREEN_CACHE_URL=.*Redis does not answer"):
        cache_for(engine_for(database), "redis://127.0.0.1:1/0", 30)
    with pytest.raises(ValueError, match="use 'memory', 'off' or a redis:// URL"):
        cache_for(engine_for(database), "memcached://x", 30)
    assert cache_for(engine_for(database), "off", 30) is None


def test_the_version_of_another_database_is_read_at_most_every_few_seconds(postgres_url):
    engine = engine_for(postgres_url)
    version = DataVersion(engine, MemoryStore(), check_seconds=3600)
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        first = version.token()
        assert version.token() == first and len([s for s in statements if "alert_events" in s]) == 1
        with engine.begin() as connection:  # a write by this process is seen at once, without reading again
            connection.execute(text("INSERT INTO connector_runs (connector, started_at, status, fetched, accepted, "
                                    "rejected, duplicates) VALUES ('x', 1, 'ok', 0, 0, 0, 0)"))
        assert version.token() != first
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def test_unread_parameters_are_those_named_so_and_never_read():
    def callback(_tick, _painted, unit, _used):
        def inner():
            return _used
        return unit, inner

    assert unread_parameters(callback) == {"_tick", "_painted"}


def test_the_memory_store_stays_within_its_bytes_and_drops_what_expired():
    store = MemoryStore(max_bytes=10_000)
    for number in range(100):
        store.set(f"k{number}", b"x" * 1000, ttl=60)
    entries, size = store.size
    assert size <= 10_000 and entries == 10 and store.get("k99") is not None and store.get("k0") is None
    store.set("brief", b"y", ttl=0.01)
    time.sleep(0.02)
    assert store.get("brief") is None
    assert Stored.unpack(Stored(204, (("ETag", '"a"'),), b"\x00\x01").pack()) == Stored(204, (("ETag", '"a"'),),
                                                                                       b"\x00\x01")


def test_request_basics_are_read_once_per_data_version(database, catalog):
    from cityops.storage import sync_indicators

    with session_scope(database) as session:
        sync_indicators(session, catalog)
    from city_factory import tiny_city
    from cityops.boundaries import replace_units

    with session_scope(database) as session:
        replace_units(session, tiny_city())
    engine = engine_for(database)
    cache = ResponseCache(MemoryStore(), DataVersion(engine, MemoryStore()), 30)
    basics = RequestBasics()
    counter = QueryCounter(engine)
    try:
        with session_scope(database) as session:
            opened = []

            def open_session():  # the session is asked for only when the basics are read
                opened.append(session)
                return session

            first = basics.read(open_session, catalog, Viewer(), cache.version)
            reads = counter.count
            assert reads >= 1 and len(opened) == 1
            for _ in range(5):
                assert basics.read(open_session, catalog, Viewer(), cache.version) is first
            assert counter.count == reads and len(opened) == 1
            district = basics.read(open_session, catalog, Viewer("officer", "990101"), cache.version)
            assert district[2].root_code == "990101"
        with session_scope(database) as session:
            session.execute(text("UPDATE units SET population = population + 1 WHERE code = '990101'"))
        with session_scope(database) as session:
            assert basics.read(lambda: session, catalog, Viewer(), cache.version) is not first
    finally:
        counter.close()


def test_a_request_begins_its_session_at_its_first_query_and_ends_it_as_session_scope_does(database):
    engine = engine_for(database)
    with session_scope(database) as session:
        session.execute(text("CREATE TABLE marks (name TEXT)"))
    checked_out = engine.pool.checkedout()
    with LazySession(database) as open_session:
        assert not open_session.opened and engine.pool.checkedout() == checked_out  # no query: no session
    with LazySession(database) as open_session:
        session = open_session()
        assert open_session() is session  # one unit of work per request
        session.execute(text("INSERT INTO marks VALUES ('kept')"))
    with pytest.raises(RuntimeError):
        open_session()  # the request is over: a late query must not begin a session nobody ends
    with pytest.raises(ValueError):
        with LazySession(database) as open_session:
            open_session().execute(text("INSERT INTO marks VALUES ('rolled back')"))
            raise ValueError("the callback failed")
    assert engine.pool.checkedout() == checked_out
    with session_scope(database) as session:
        assert session.execute(text("SELECT name FROM marks")).scalars().all() == ["kept"]
