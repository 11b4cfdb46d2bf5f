"""Panel titles that name a unit, with parts that give way in order where the panel is narrow (assets/style.css):
the template's words first, whole ("key indicators", "Alerts ·": never "Aler…"), then the unit's name with an
ellipsis; the counts and as-of marks after them never. On a wall "Alerts · Ha… (30 open · 22 overdue)" said neither
where nor what."""

from __future__ import annotations

from dash import html

from layouts.text import TEXT


def named_heading(key: str, language: str, field: str, name: str) -> list:
    """TEXT[key] ("{name} · 关键指标", "Alerts · {unit}") with `name` in place of {field}, as spans."""
    template = TEXT[key][0 if language == "zh" else 1]
    before, _, after = template.partition("{" + field + "}")
    words = [html.Span(html.Span(part), className="heading-words") if part else None for part in (before, after)]
    return [part for part in (words[0], html.Span(name, className="heading-name"), words[1]) if part is not None]
