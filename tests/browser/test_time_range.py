"""Time ranges, the previous-week overlay and the comparison view, clicked through in chromium: the trend's x-range
follows the range chosen, the comparison adds a dashed trace, the custom dates open a calendar, and a row of the
comparison view drills there."""

from __future__ import annotations

DAY = 86400
TREND = "document.querySelector('#trend-graph .js-plotly-plot')"
# The span of the trend's x-axis in seconds, and the names of its traces with a line (not the min–max band).
X_SPAN = f"(() => {{ const r = {TREND}._fullLayout.xaxis.range; return (new Date(r[1]) - new Date(r[0])) / 1000; }})()"
TRACE_NAMES = f"{TREND}.data.filter(trace => trace.hoverinfo !== 'skip').map(trace => trace.name)"


def open_with_charts(screen):
    screen.open()
    screen.page.wait_for_function(f"{TREND} && {TREND}._fullLayout && {TREND}._fullLayout.xaxis", timeout=30_000)
    screen.page.locator(".comparison-row[data-code]").first.wait_for(timeout=30_000)


def choose_range(screen, label: str, days: float):
    screen.page.locator("#range-presets label", has_text=label).click()
    screen.page.wait_for_function(f"Math.abs({X_SPAN} - {days * DAY}) < 600", timeout=15_000)


def test_the_trend_follows_the_range_and_compares_with_last_week(screen):
    open_with_charts(screen)
    assert abs(screen.page.evaluate(X_SPAN) - 7 * DAY) < 600  # the default: the last 7 days
    assert "近7天" in screen.page.locator("#trend-title").inner_text()

    choose_range(screen, "24小时", 1)
    screen.page.wait_for_function("document.querySelector('#trend-title').innerText.includes('近24小时')")
    choose_range(screen, "30天", 30)
    screen.page.wait_for_function("document.querySelector('#trend-title').innerText.includes('近30天')")
    screen.page.wait_for_function(
        "document.querySelector('#ranking-children-title').innerText.includes('近30天')")
    assert screen.page.evaluate(TRACE_NAMES) == ["本期"]

    screen.page.locator("#range-compare label").click()
    screen.page.wait_for_function(f"{TRACE_NAMES}.length === 2", timeout=15_000)
    assert screen.page.evaluate(TRACE_NAMES) == ["本期", "上周同期"]
    assert screen.page.evaluate(f"{TREND}.data.find(trace => trace.name === '上周同期').line.dash") == "dash"
    assert "对比上周同期" in screen.page.locator("#trend-title").inner_text()
    screen.page.mouse.move(*near_the_end_of(screen, "#trend-graph"))  # the unified hover, both weeks in it
    screen.page.wait_for_timeout(400)
    screen.screenshot("time-range-30d-compare")

    screen.page.locator("#range-compare label").click()
    screen.page.wait_for_function(f"{TRACE_NAMES}.length === 1", timeout=15_000)
    screen.assert_no_console_errors()


def test_custom_dates_open_a_calendar_and_title_the_panels(screen):
    open_with_charts(screen)
    screen.page.locator("#range-presets label", has_text="自定义").click()
    dates = screen.page.locator("#range-custom")
    dates.wait_for(state="visible")
    # Custom starts as the last 7 whole days up to today, titled by its dates ("11月21日–11月27日"), from the
    # first day's midnight to now: shorter than the rolling 7 days by the time since today's midnight.
    screen.page.wait_for_function("document.querySelector('#trend-title').innerText.includes('月')", timeout=15_000)
    screen.page.wait_for_function(f"{X_SPAN} >= 6 * {DAY} && {X_SPAN} < 7 * {DAY}", timeout=15_000)
    title = screen.page.locator("#trend-title").inner_text()
    assert "日–" in title and "近7天" not in title
    start = screen.page.locator("#range-dates").input_value()
    assert len(start) == 10 and start[4] == "-"
    screen.page.locator("#range-dates-wrapper").click()
    screen.page.locator(".dash-datepicker-calendar").first.wait_for()
    # The calendar speaks the screen's language (here Chinese, in an English browser): weekdays from Monday.
    assert weekday_names(screen) == ["一", "二", "三", "四", "五", "六", "日"]
    assert "年" in screen.page.locator(".dash-datepicker-calendar-month-header").first.inner_text()
    screen.screenshot("time-range-custom-calendar")
    screen.page.keyboard.press("Escape")
    screen.page.locator("#range-presets label", has_text="7天").click()
    dates.wait_for(state="hidden")
    screen.assert_no_console_errors()


def weekday_names(screen) -> list[str]:
    """The weekday row of the calendar's first month."""
    first_month = screen.page.locator(".dash-datepicker-calendar").first
    return [name.strip() for name in first_month.locator("thead tr:nth-child(2) th").all_inner_texts()]


def test_the_calendar_follows_the_language_chosen_on_the_screen(screen):
    screen.open("/?lang=en")
    screen.page.locator("#range-presets label", has_text="Custom").click()
    screen.page.locator("#range-custom").wait_for(state="visible")
    screen.page.locator("#range-dates-wrapper").click()
    screen.page.locator(".dash-datepicker-calendar").first.wait_for()
    assert weekday_names(screen) == ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
    assert "年" not in screen.page.locator(".dash-datepicker-calendar-month-header").first.inner_text()
    screen.assert_no_console_errors()


def test_a_comparison_row_drills_there(screen):
    open_with_charts(screen)
    rows = screen.page.locator(".comparison-row[data-code]")
    districts = rows.count()
    assert districts == 4  # the test city's districts, every one with its sparkline
    assert screen.page.locator(".comparison-row[data-code] svg.cmp-spark").count() == districts
    first = rows.first
    code = first.get_attribute("data-code")
    first.click()
    screen.page.wait_for_function(
        f"document.querySelector('.breadcrumb .crumb-current')?.dataset.code === '{code}'", timeout=15_000)
    # The view now ranks the district's streets: codes one level down, under the district's.
    screen.page.wait_for_function(
        f"[...document.querySelectorAll('.comparison-row[data-code]')].every(row => row.dataset.code.startsWith('{code}')"
        f" && row.dataset.code.length === 9)", timeout=15_000)
    streets = screen.page.locator(".comparison-row[data-code]")
    assert streets.count() > 1
    screen.page.mouse.move(0, 0)
    screen.screenshot("comparison-district")
    # A street drills again; the order stays worst first (a higher count first for 12345 complaints).
    values = [float(text.replace(",", "")) for text in
              screen.page.locator(".comparison-row.status-normal .cmp-number, "
                                  ".comparison-row.status-warning .cmp-number, "
                                  ".comparison-row.status-critical .cmp-number").all_inner_texts()]
    assert values == sorted(values, reverse=True)
    street = streets.first.get_attribute("data-code")
    streets.first.click()
    screen.page.wait_for_function(
        f"document.querySelector('.breadcrumb .crumb-current')?.dataset.code === '{street}'", timeout=15_000)
    screen.page.wait_for_function(
        f"[...document.querySelectorAll('.comparison-row[data-code]')].every(row => row.dataset.code.startsWith('{street}')"
        f" && row.dataset.code.length === 12)", timeout=15_000)
    screen.page.mouse.move(0, 0)
    screen.screenshot("comparison-street")
    screen.assert_no_console_errors()


def near_the_end_of(screen, selector: str) -> tuple[float, float]:
    """A point over the newest data (the test city has two days of history, at the right of a 30-day axis)."""
    box = screen.page.locator(selector).bounding_box()
    return box["x"] + box["width"] * 0.95, box["y"] + box["height"] * 0.7


def test_the_trend_s_title_and_chart_come_in_one_answer(screen):
    """Choosing another indicator asks once for the trend's title and its figure together: from two callbacks, a
    wall's playlist step on a busy server showed the next view's title for half a second over the last chart."""
    open_with_charts(screen)
    page = screen.page
    asked: list[str] = []
    page.on("request", lambda request: "_dash-update-component" in request.url
            and "trend-title" in (request.post_data or "") and asked.append(request.post_data_json["output"]))
    page.locator('.kpi-card[data-indicator="aqi"]').click()
    page.wait_for_function(f"{TREND}.layout.uirevision.startsWith('aqi|')", timeout=15_000)
    page.wait_for_function("document.querySelector('#trend-title').innerText.startsWith('空气质量指数')")
    assert len(asked) == 1 and "trend-figure" in asked[0], asked
    screen.assert_no_console_errors()


def test_a_graph_mounted_after_the_selection_moved_on_shows_the_selection(screen):
    """A wall loading as its playlist moves on: the graph (mounted once the other panels have painted) was built
    for the first selection, while its title had already followed the next; the chart stayed a whole step behind
    its title. Here the graph's mounting is held until another indicator has been chosen and titled."""
    page = screen.page
    held = []

    def hold_the_mount(route):
        if "trend-body.children" in (route.request.post_data or "") and not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/_dash-update-component*", hold_the_mount)
    screen.open()
    for _ in range(150):  # the mounting is asked for once the other panels have painted
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the graph's mounting was never asked for"
    page.evaluate("""() => window.dash_clientside.set_props('selection',
        {data: {unit: null, indicator: 'aqi', range: '7d'}})""")
    page.wait_for_timeout(500)  # the title's answer waits for the graph's note, which is still held
    held[0].continue_()
    page.wait_for_function(f"{TREND} && {TREND}.layout", timeout=15_000)
    # At once, not at the next refresh (every 5 s here, every 30 s by default; a wall's chart stayed a step behind).
    page.wait_for_function(f"{TREND}.layout.uirevision.startsWith('aqi|')", timeout=2_000)
    page.wait_for_function("document.querySelector('#trend-title').innerText.startsWith('空气质量指数')",
                           timeout=2_000)
    page.unroute("**/_dash-update-component*")
    screen.assert_no_console_errors()
