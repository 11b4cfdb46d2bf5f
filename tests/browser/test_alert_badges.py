"""Alert badges in the browser: open alerts roll up to every level — a badge beside each unit's name on the map,
the viewed unit's count in the KPI heading, each indicator's on its card — and follow a drill-down."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import delete, select, update

from cityops.alerts.badges import indicator_alert_counts
from cityops.alerts.evaluate import evaluate_alerts
from cityops.alerts.queries import alert_counts
from cityops.alerts.rules import AlertConfig, Rule, RuleType
from cityops.catalog import load_catalog
from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.models import Alert, AlertCursor, AlertEvent, AlertNotification
from cityops.scope import Viewer, viewer_scope
from cityops.storage import indicator_ids
from cityops.tree import load_tree

pytestmark = pytest.mark.browser

# A rule of this test's own, so that its alerts (and only they) are removed afterwards. On the simulator's data
# the overdue share of grid incidents crosses its community and street thresholds in a few places, at both
# severities.
RULE = Rule("badge-check", RuleType.THRESHOLD, ("grid_overdue_rate",), (Level.COMMUNITY, Level.STREET))


@pytest.fixture(scope="module")
def badge_alerts(screen_settings):
    """Alerts from evaluating RULE over the browser tests' database, one of them left unattended past its
    dispatch deadline (overdue); all removed at the end, so the other browser tests see the data they expect."""
    url = screen_settings.database_url
    catalog = load_catalog(screen_settings.catalog_path)
    now = int(time.time())
    with session_scope(url) as session:
        evaluate_alerts(session, catalog, indicator_ids(session, catalog), load_tree(session),
                        AlertConfig((RULE,)), now)
    with session_scope(url) as session:
        made = session.scalars(select(Alert.id).where(Alert.rule == RULE.name, Alert.phase != "pending")
                               .order_by(Alert.id)).all()
        assert made, "the rule raised no alert on the simulator's data: choose another indicator for RULE"
        session.execute(update(Alert).where(Alert.id == made[0]).values(dispatch_due=now - 60))
    yield made
    with session_scope(url) as session:
        ours = select(Alert.id).where(Alert.rule == RULE.name).scalar_subquery()
        session.execute(delete(AlertNotification).where(AlertNotification.alert_id.in_(ours)))
        session.execute(delete(AlertEvent).where(AlertEvent.alert_id.in_(ours)))
        session.execute(delete(Alert).where(Alert.rule == RULE.name))
        session.execute(delete(AlertCursor).where(AlertCursor.rule == RULE.name))


def expected_badges(settings, parent_code: str | None = None) -> tuple[dict, tuple, dict, str]:
    """From the database, as the viewer may see it: per child code of the unit viewed its (open, overdue,
    critical), the unit's own, per indicator, and the unit's name. The unit viewed: `parent_code`, or the
    viewer's root."""
    catalog = load_catalog(settings.catalog_path)
    now = int(time.time())
    with session_scope(settings.database_url) as session:
        tree = load_tree(session)
        scope = viewer_scope(session, Viewer())
        unit_id = tree.id_by_code[parent_code] if parent_code else scope.root_id
        children = tree.children(unit_id)
        counts = alert_counts(session, scope, tree, [unit_id, *children.index], now)
        by_indicator = indicator_alert_counts(session, scope, tree, indicator_ids(session, catalog), unit_id, now)
    tally = {unit: tuple(int(v) for v in counts.loc[unit, ["open", "overdue", "critical"]])
             for unit in counts.index}
    return ({str(code): tally[unit] for unit, code in children["code"].items()}, tally[unit_id],
            {key: tuple(int(v) for v in row) for key, row in by_indicator[["open", "overdue", "critical"]].iterrows()},
            str(tree.frame.at[unit_id, "name_zh"]))


def assert_map_badges(page, children: dict[str, tuple[int, int, int]]) -> None:
    """Every child's label shows its open alerts in the worst severity's colour and the overdue ones; a child
    with nothing open shows no badge."""
    with_alerts = sum(1 for tally in children.values() if tally[0] > 0)
    page.wait_for_function(f"document.querySelectorAll('.unit-label .alert-badge').length === {with_alerts}")
    for code, (open_, overdue, critical) in children.items():
        badge = page.locator(f'.unit-label [data-code="{code}"] .alert-badge')
        if open_ == 0:
            assert badge.count() == 0, code
            continue
        assert badge.locator(".alert-badge-count").inner_text() == str(open_), code
        assert badge.get_attribute("data-overdue") == str(overdue), code
        assert ("alert-critical" if critical else "alert-warning") in badge.get_attribute("class"), code
        assert badge.locator(".alert-badge-overdue").count() == (1 if overdue else 0), code


def assert_kpi_badges(page, name: str, unit: tuple[int, int, int], by_indicator: dict) -> None:
    """The heading names the unit and counts its open and overdue alerts; each card its indicator's."""
    open_, overdue, critical = unit
    page.wait_for_function("(heading => heading && heading.innerText.startsWith(%r)"
                           " && heading.querySelector('.alert-heading')?.dataset.open === '%d')"
                           "(document.getElementById('kpi-heading'))" % (name, open_))
    heading = page.locator("#kpi-heading .alert-heading")
    text = heading.inner_text()
    assert f"⚠ {open_} 未结" in text and (f"{overdue} 超时" in text) == bool(overdue), text
    assert ("alert-critical" if critical else "alert-warning") in heading.get_attribute("class")
    for key, (count, _late, worst) in by_indicator.items():
        badge = page.locator(f'.kpi-card[data-indicator="{key}"] .alert-card-badge')
        if badge.count():  # indicators with `kpi: false` have no card to carry a badge
            assert badge.get_attribute("data-open") == str(count), key
            assert ("alert-critical" if worst else "alert-warning") in badge.get_attribute("class"), key


def test_badges_roll_up_on_the_map_and_the_kpi_panel_and_follow_a_drill_down(screen, screen_settings, badge_alerts):
    screen.open()
    page = screen.page
    districts, city, by_indicator, city_name = expected_badges(screen_settings)
    assert city[0] >= len(badge_alerts) and city[1] >= 1  # ours are counted, the one left unattended as overdue
    assert_map_badges(page, districts)
    assert_kpi_badges(page, city_name, city, by_indicator)
    assert page.locator('.kpi-card[data-indicator="hotline_complaints_district"]').count() == 0  # `kpi: false`
    screen.screenshot("alert-badges-city")

    # Drill into the district with the most open alerts, by clicking where its name is written (labels and
    # badges let clicks through to the polygon underneath); the tooltip there says what the badge counts.
    district = max(districts, key=lambda code: districts[code][0])
    box = page.locator(f'.unit-label [data-code="{district}"]').bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator(".unit-tooltip").wait_for()
    assert f"告警 {districts[district][0]} 未结" in page.locator(".unit-tooltip").inner_text()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        f"document.querySelector('.breadcrumb .crumb-current')?.dataset.code === '{district}'")
    streets, district_tally, district_by_indicator, district_name = expected_badges(screen_settings, district)
    assert district_tally == districts[district]  # the district's heading is its badge on the city's map
    page.wait_for_function("[...document.querySelectorAll('.unit-label [data-code]')].map(label => label.dataset.code)"
                           f".sort().join() === {','.join(sorted(streets))!r}")
    assert_map_badges(page, streets)
    assert_kpi_badges(page, district_name, district_tally, district_by_indicator)
    screen.screenshot("alert-badges-district")
    screen.assert_no_console_errors()


ROW_FIT = """() => [...document.querySelectorAll('.alert-row')].map(row => {
    const line = row.querySelector('.alert-line').getBoundingClientRect();
    const name = row.querySelector('.alert-unit-name');
    return {code: row.dataset.code, overdue: row.classList.contains('overdue'),
            past: [...row.querySelector('.alert-line').children].filter(part =>
                part.getBoundingClientRect().right > line.right + 0.5).map(part => part.className),
            nameWhole: name.scrollWidth <= name.clientWidth + 1,
            nameShare: name.getBoundingClientRect().width / line.width,
            cutChips: [...row.querySelectorAll('.alert-line .chip')].filter(chip => {
                // The chip's own width against its text's: an ellipsis may take two letters for a share of a pixel.
                const whole = chip.cloneNode(true);
                whole.style.cssText = 'position: absolute; visibility: hidden; width: max-content; max-width: none';
                chip.parentElement.appendChild(whole);
                const cut = chip.checkVisibility()
                    && chip.getBoundingClientRect().width + 0.01 < whole.getBoundingClientRect().width;
                whole.remove();
                return cut;
            }).map(chip => chip.textContent),
            phaseShown: [...row.querySelectorAll('.chip-firing, .chip-recovered')].some(chip =>
                chip.checkVisibility()),
            // How long ago and when, each whole on the first line or not shown (a line below is not): "5 h ago",
            // never "5 h ag…".
            sinceCut: [...row.querySelectorAll('.since-age, .since-clock')].filter(part => {
                const since = part.parentElement.getBoundingClientRect(), box = part.getBoundingClientRect();
                const whole = part.cloneNode(true);
                whole.style.cssText = 'position: absolute; visibility: hidden; width: max-content; max-width: none';
                part.parentElement.appendChild(whole);
                const cut = box.top < since.bottom - 0.5
                    && (box.width + 0.01 < whole.getBoundingClientRect().width || box.left < since.left - 0.5);
                whole.remove();
                return cut;
            }).map(part => part.textContent),
            ageShown: (() => {
                const age = row.querySelector('.since-age');
                return age.getBoundingClientRect().top < age.parentElement.getBoundingClientRect().bottom - 0.5;
            })()};
})"""

CARD_FIT = """() => [...document.querySelectorAll('.kpi-card')].filter(card => card.querySelector('.alert-card-badge'))
    .map(card => {
        const box = card.getBoundingClientRect(), badge = card.querySelector('.alert-card-badge');
        const count = badge.querySelector('.alert-badge-count'), word = badge.querySelector('.overdue-word');
        return {key: card.dataset.indicator, inside: badge.getBoundingClientRect().right <= box.right + 0.5,
                countWhole: count.scrollWidth <= count.clientWidth + 1,
                overdueWord: word ? word.checkVisibility() : null};
    })"""


NAMES_FIT = """() => [...document.querySelectorAll('.kpi-card .kpi-name')].map(name => {
    // The name's own width against its text's (a clone without the ellipsis): a share of a pixel cuts two letters.
    const whole = name.cloneNode(true);
    whole.style.cssText = 'position: absolute; visibility: hidden; width: max-content; max-width: none';
    name.parentElement.appendChild(whole);
    const room = name.getBoundingClientRect().width, needs = whole.getBoundingClientRect().width;
    whole.remove();
    return {shown: name.innerText, title: name.title, cut: room + 0.01 < needs, room, needs,
            badged: name.closest('.kpi-card').querySelector('.alert-card-badge') !== null};
})"""


# Each KPI card's change: whether what its first line shows is cut, and whether all of it is shown (its arrow and
# figure, the words apart: a wall does not show them).
CHANGES_FIT = """() => [...document.querySelectorAll('.kpi-head > .kpi-change')].filter(change => change.textContent)
    .map(change => {
        const box = change.getBoundingClientRect();
        const rects = node => { const range = document.createRange(); range.selectNodeContents(node);
                                return [...range.getClientRects()].filter(r => r.width > 0); };
        const shown = r => r.top < box.bottom - 0.5;
        const words = change.querySelector('.kpi-change-words');
        const parts = [...change.childNodes].filter(node => node !== words && node.textContent.trim())
            .flatMap(node => rects(node));
        return {text: change.textContent, badged: change.parentElement.querySelector('.alert-card-badge') !== null,
                whole: parts.every(shown),
                cut: parts.filter(shown).some(r => r.left < box.left - 0.5 || r.right > box.right + 0.5)};
    })"""


@pytest.mark.parametrize("language, width, height, wall", [("en", 1920, 1080, False), ("en", 1920, 1080, True),
                                                          ("zh", 3840, 2160, True), ("en", 3840, 2160, True)])
def test_an_overdue_alert_s_row_and_card_badge_keep_the_unit_s_name_and_their_counts(screen, screen_settings,
                                                                                      badge_alerts, language,
                                                                                      width, height, wall):
    """An overdue alert adds a chip to its row and a word to its card's badge: the unit's name gives way last (it
    is cut only when longer than 45 % of the row), its chips are never cut (a wall keeps only OVERDUE), nothing is
    pushed past the row's or the card's edge, the count
    stays whole, and a wall's card shows the overdue count without its word. The city's view, styled as a wall
    (assets/wall.css) where asked: a wall's playlist would move on while it is measured."""
    screen.page.set_viewport_size({"width": width, "height": height})
    screen.open(f"/?lang={language}")
    page = screen.page
    if wall:
        page.evaluate("document.documentElement.classList.add('wall')")
    fit = page.wait_for_function(f"""() => document.querySelectorAll('.alert-row.overdue').length > 0
        && document.querySelectorAll('.alert-card-badge .overdue-count').length > 0
        && {{rows: ({ROW_FIT})(), cards: ({CARD_FIT})()}}""").json_value()
    rows, cards = fit["rows"], fit["cards"]
    assert [row for row in rows if row["past"]] == []
    # Overdue, firing, recovered read whole (an English screen showed "firi…"); a wall's overdue row says only
    # OVERDUE (its breach going on or over is in the drawer).
    assert [row for row in rows if row["cutChips"]] == []
    assert [row for row in rows if row["overdue"] and row["phaseShown"] is wall] == []
    # How long ago and when: each whole or not shown (a long name beside OVERDUE and firing may leave no room).
    assert [row for row in rows if row["sinceCut"]] == [], [(r["code"], r["sinceCut"], r["ageShown"]) for r in rows]
    assert [row for row in rows if not row["nameWhole"] and row["nameShare"] < 0.4] == []
    # Across the room the name is what is read: a wall's rows keep them whole (60 % of the row), times give way.
    assert not wall or [row for row in rows if not row["nameWhole"]] == []
    assert cards and all(card["inside"] and card["countWhole"] for card in cards), cards
    assert all(card["overdueWord"] is (None if card["overdueWord"] is None else not wall) for card in cards), cards
    # A wall's cards say the catalog's short names (short_zh / short_en), whole beside their change and alert
    # badges; a browser's say the whole name (cut with an ellipsis where they must: the title holds it).
    names = page.evaluate(NAMES_FIT)
    catalog = load_catalog(screen_settings.catalog_path)
    by_name = {indicator.name(language): indicator for indicator in catalog}
    assert sorted(name["title"] for name in names) == sorted(indicator.name(language) for indicator in catalog
                                                             if indicator.kpi)
    assert [name["shown"] for name in names] == [by_name[name["title"]].short_name(language) if wall else
                                                 name["title"] for name in names]
    assert not wall or [name for name in names if name["cut"]] == [], names
    # A change gives way whole, figure first, then its arrow: what is shown of it is never cut, and where there is
    # room (no badge beside the name) it is all there.
    changes = page.evaluate(CHANGES_FIT)
    assert [change for change in changes if change["cut"]] == [], changes
    assert all(change["whole"] for change in changes if not change["badged"]), changes
    # The KPI heading's count stays whole beside a long name (a subdistrict's in English read "⚠ 2 open · 2 o…"):
    # the words before it give way.
    # So do the alert panel's open and overdue counts, the map's and the trend's as-of marks (an English wall's map
    # title read "as of 08:0…") and the ranking's count.
    page.wait_for_function("document.querySelector('#trend-title .as-of-mark') !== null")
    # With the unit's real name, the title's words give way before any of the name does ("Alerts · Ha…" on a wall).
    names_cut = page.evaluate("""() => [...document.querySelectorAll('.panel-title > .heading-name')]
        .filter(name => name.scrollWidth > name.clientWidth + 0.5).map(name => name.parentElement.id)""")
    assert names_cut == [], names_cut
    # The ranking's words after "Districts ranked" give way whole, the range before the indicator (a hidden word
    # has wrapped onto the line that is not shown).
    shown = page.evaluate("""() => {
        const words = document.querySelector('#ranking-children-title > .heading-words');
        const top = words.getBoundingClientRect().top;
        return [...words.children].map(word => Math.abs(word.getBoundingClientRect().top - top) < 2);
    }""")
    assert len(shown) == 2 and shown in ([True, True], [True, False], [False, False]), shown
    headings = page.evaluate("""() => [['kpi-heading', '.alert-heading'], ['alerts-title', '.alerts-counts'],
                                       ['map-title', '.as-of-mark'], ['trend-title', '.as-of-mark'],
                                       ['ranking-children-title', '.title-count']]
        .map(([id, counts]) => {
            const heading = document.getElementById(id);
            // The unit's name where it has a span of its own (layouts/headings.py), else the title's first words.
            // (The ranking's indicator is among its words: what is ranked, its first words, is never cut.)
            (heading.querySelector('.heading-name, .heading-words > span') || heading.firstChild).textContent =
                'Quanyang Subdistrict of a Long Name · key indicators'.repeat(4);
            const shown = heading.querySelector(counts), badge = shown.getBoundingClientRect();
            const box = heading.getBoundingClientRect(), lead = heading.querySelector('.heading-lead');
            return {id, inside: badge.right <= box.right + 0.5 && badge.width > 0,
                    whole: shown.scrollWidth <= Math.ceil(badge.width),
                    leadWhole: !lead || (lead.scrollWidth <= Math.ceil(lead.getBoundingClientRect().width)
                                         && lead.getBoundingClientRect().right <= box.right + 0.5)};
        })""")
    assert [heading for heading in headings
            if not (heading["inside"] and heading["whole"] and heading["leadWhole"])] == [], headings
    screen.screenshot(f"alert-fit-{language}-{width}x{height}{'-wall' if wall else ''}")
    screen.assert_no_console_errors()
