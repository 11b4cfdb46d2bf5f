"""Map labels in chromium: where units are small on the screen their names would be written over one another;
assets/map.js lays them out again whenever they change or move, so that no two shown labels touch (a label moves a
line up or down, keeps only its alert badge, or is left out), and they come back whole when there is room."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

# Each shown label's box as the reader sees it: the name and its badge, or the badge alone when it is compact.
SHOWN_BOXES = """() => [...document.querySelectorAll('.unit-label')]
    .filter(marker => !marker.classList.contains('label-hidden'))
    .map(marker => {
        const parts = marker.classList.contains('label-compact') ? [marker.querySelector('.alert-badge')]
            : [marker.querySelector('.unit-label-name'), marker.querySelector('.alert-badge')];
        const boxes = parts.filter(Boolean).map(part => part.getBoundingClientRect());
        return {code: marker.querySelector('[data-code]').dataset.code,
                left: Math.min(...boxes.map(b => b.left)), right: Math.max(...boxes.map(b => b.right)),
                top: Math.min(...boxes.map(b => b.top)), bottom: Math.max(...boxes.map(b => b.bottom))};
    })"""

PLACEMENTS = """() => [...document.querySelectorAll('.unit-label')].map(marker =>
    ['label-hidden', 'label-compact', 'label-up', 'label-down'].find(name => marker.classList.contains(name))
    || 'whole')"""


def overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    return [(a["code"], b["code"]) for index, a in enumerate(boxes) for b in boxes[index + 1:]
            if a["left"] < b["right"] - 0.5 and b["left"] < a["right"] - 0.5
            and a["top"] < b["bottom"] - 0.5 and b["top"] < a["bottom"] - 0.5]


def zoom(page, control: str, times: int) -> None:
    for _ in range(times):
        page.click(f".leaflet-control-zoom-{control}")
        page.wait_for_timeout(350)  # Leaflet's zoom animation, then the labels' layout in the next frame
    page.wait_for_timeout(300)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_labels_never_overlap_and_come_back_whole_when_there_is_room(screen, language):
    screen.open(f"/?lang={language}")
    page = screen.page
    districts = screen.polygons().count()
    page.wait_for_function(f"document.querySelectorAll('.unit-label').length === {districts}")
    page.wait_for_timeout(300)
    assert overlapping(page.evaluate(SHOWN_BOXES)) == []
    at_first = page.evaluate(PLACEMENTS)

    # Zoomed out, the districts shrink while their names keep their size: written where they are, they would
    # cover one another.
    zoom(page, "out", 5)
    crowded = page.evaluate(PLACEMENTS)
    assert set(crowded) - {"whole"}, f"nothing had to give way after zooming out: {crowded}"
    shown = page.evaluate(SHOWN_BOXES)
    assert overlapping(shown) == []
    assert shown, "every label was left out"
    screen.screenshot(f"map-labels-crowded-{language}")

    # Labels that change while the map is not shown (a hidden panel) have no boxes to compare: they are laid out
    # once the map is shown again, not all left out nor all written whole.
    page.evaluate("""() => {
        document.querySelector('.leaflet-container').style.display = 'none';
        const marker = document.querySelector('.unit-label');
        marker.style.zIndex = String(Number(marker.style.zIndex || 0) + 1);  // a label moved, as a redraw does
    }""")
    page.wait_for_timeout(300)
    page.evaluate("document.querySelector('.leaflet-container').style.display = ''")
    page.wait_for_timeout(300)
    assert page.evaluate(PLACEMENTS) == crowded
    assert overlapping(page.evaluate(SHOWN_BOXES)) == []

    zoom(page, "in", 5)
    assert page.evaluate(PLACEMENTS) == at_first  # the same layout as before: nothing left behind by the zoom
    assert overlapping(page.evaluate(SHOWN_BOXES)) == []
    screen.assert_no_console_errors()
