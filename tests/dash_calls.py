"""Calling a callback's function as Dash would: inside a request to its endpoint, with `ctx.triggered` set."""

from __future__ import annotations

from contextvars import copy_context

from dash._callback_context import context_value
from dash._utils import AttributeDict


def in_callback(app, function, *args, triggered: list[dict] | None = None, headers: dict | None = None,
                path: str = "/_dash-update-component", outputs_list: list | None = None):
    def run():
        context_value.set(AttributeDict(triggered_inputs=triggered or [], outputs_list=outputs_list or []))
        with app.server.test_request_context(path, method="POST", headers=headers or {}):
            return function(*args)
    return copy_context().run(run)
