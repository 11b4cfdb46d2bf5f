"""The comparison view in the children panel: the children of the unit on the map ranked worst first for the
selected indicator, each with its trend over the selected time range; a click on a row drills there.

Like the trend, the view is mounted once the charts may load (callbacks/loading.py): `mount_comparison` puts its
empty frame in the panel, and `show_comparison` fills the rows as soon as the frame appears, then again on every
selection change and refresh (sending nothing when the rows are the same, see callbacks/redraw.py).

The rows arrive as markup (layouts/comparison.py says why); the browser writes them in place and reads clicks on
them through one listener, which names the clicked row's unit to `select_compared_unit`.
"""

from __future__ import annotations

from dash import Input, Output, State, callback, clientside_callback, no_update

from callbacks.context import current_language, resolve_view, viewer_request
from callbacks.redraw import digest_of
from cityops.hierarchy import Level
from cityops.readings import children_readings, children_trends, source_of
from cityops.time_range import bucket_at_least, resolve_range
from layouts.comparison import comparison_markup, comparison_note, comparison_view, not_measured_note
from layouts.ids import ComparisonIds, PageIds, RankingIds
from cityops.ranking import ranked_children
from layouts.text import t


def comparison_for(request, selection) -> str:
    """The rows of the selection's comparison view, for this viewer, as markup."""
    view = resolve_view(request, selection)
    indicator = request.catalog[view.indicator_key]
    parent = request.tree.frame.loc[view.map_parent_id]
    parent_level = int(parent["level"])
    if request.tree.children(view.map_parent_id).empty or parent_level >= Level.COMMUNITY:
        name = parent["name_zh"] if request.language == "zh" else parent["name_en"]
        return comparison_note(t("no_children", request.language, unit=name))
    level = Level(parent_level + 1)
    if source_of(indicator, level) is None:
        return not_measured_note(level, request.language)
    children = children_readings(request.session, request.scope, request.catalog, request.ids, view.map_parent_id,
                                 view.indicator_key, request.now, tree=request.tree)
    time_range = resolve_range(selection, request.now, request.settings.timezone)
    bucket = bucket_at_least(time_range.spark_bucket, indicator.interval_seconds)
    trends = children_trends(request.session, request.scope, request.catalog, request.ids, view.map_parent_id,
                             view.indicator_key, *time_range.window, bucket, time_range.utc_offset,
                             tree=request.tree, now=request.now)
    return comparison_markup(ranked_children(children, indicator), trends, indicator,
                             indicator.thresholds_at(level), request.language, request.settings.timezone, request.now,
                             view.unit_code)


@callback(
    Output(RankingIds.CHILDREN_BODY, "children"),
    Input(PageIds.CHARTS_READY, "data"),
    prevent_initial_call=True,
)
def mount_comparison(_ready):
    return comparison_view(current_language())


@callback(
    Output(ComparisonIds.MARKUP, "data"),
    Output(ComparisonIds.DIGEST, "data"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    State(ComparisonIds.DIGEST, "data"),
)
def show_comparison(selection, _tick, shown=None):
    # Also runs once when the view appears: its first rows, and a selection changed meanwhile is not lost.
    with viewer_request() as request:
        markup = comparison_for(request, selection)
    digest = digest_of(markup)
    if digest == shown:
        return no_update, no_update  # the same rows: left as they are (a click landing on one is not lost)
    return markup, digest


# The browser writes the rows in place, and (once) listens for clicks on them: a click, or Enter on a focused row,
# names its unit in CLICKED, which the server checks (`select_compared_unit`).
clientside_callback(
    """function(markup) {
        if (typeof markup !== 'string') { return; }
        const write = tries => {
            const rows = document.getElementById('%(rows)s');
            if (!rows) {  // the view was just mounted: its element is a frame away
                if (tries > 0) { requestAnimationFrame(() => write(tries - 1)); }
                return;
            }
            rows.innerHTML = markup;
            if (!rows.dataset.listening) {
                rows.dataset.listening = '1';
                rows.addEventListener('click', event => {
                    const row = event.target.closest('[data-code]');
                    if (row && rows.contains(row)) {
                        dash_clientside.set_props('%(clicked)s', {data: {code: row.dataset.code, at: Date.now()}});
                    }
                });
            }
        };
        write(10);
    }""" % {"rows": ComparisonIds.ROWS, "clicked": ComparisonIds.CLICKED},
    Input(ComparisonIds.MARKUP, "data"),
)


@callback(
    Output(PageIds.SELECTION, "data", allow_duplicate=True),
    Input(ComparisonIds.CLICKED, "data"),
    State(PageIds.SELECTION, "data"),
    prevent_initial_call=True,
)
def select_compared_unit(clicked, selection):
    """The selection drilled to the clicked row's unit, if the viewer may see it (whatever the page sent)."""
    code = clicked.get("code") if isinstance(clicked, dict) else None
    if not isinstance(code, str):
        return no_update
    with viewer_request() as request:
        unit_id = request.tree.id_by_code.get(code)
        if unit_id is None or not request.scope.contains(request.tree, unit_id):
            return no_update
    selection = selection if isinstance(selection, dict) else {}
    return no_update if selection.get("unit") == code else {**selection, "unit": code}
