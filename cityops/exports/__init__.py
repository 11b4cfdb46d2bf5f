"""Analysts' exports: the data behind every panel (CSV, XLSX), reports of a view (PDF, PNG), and the record of
every export taken.

    panel_data.py      what each panel's data is, for a viewer's scope and selection, with headers in their language
    stamp.py           who exported what, of which scope, from data as of when and from which sources
    files.py           CSV (UTF-8 with BOM, so Excel reads Chinese) and XLSX (the data, and a stamp sheet)
    report_content.py  everything one report shows, read within the viewer's scope
    report_page.py     the report as one print-style plotly figure (an A4 landscape page)
    print_style.py     the page's size, fonts, colours and drawing (text, headings, tables) the report uses
    pdf_text.py        the report PDF's text layer repaired (Chinese copies as written) and its title set
    ranking_chart.py   the children ranked as a bar chart image (the panel itself shows rows, not a chart)
    render.py          figures drawn by kaleido into PDF, PNG or SVG, on this machine's chromium, offline
    exporting.py       taking one export: the file (or what the browser needs to draw it) and its record
    records.py         the `exports` table: who, what, when, scope, format, rows and bytes

No callbacks here: callbacks/exports.py turns clicks into calls to these. The words come from layouts/text.py
(the one place UI text lives, in both languages), the status colours from layouts/theme.py and the children's
order from layouts/ranking.py (the comparison view's own), so a file says what the screen says.
"""

# What can be exported, and how.
DATA_PANELS = ("kpi", "map", "trend", "ranking", "alerts")
CHART_PANELS = ("trend", "ranking")  # PNG and SVG of their chart
DRAWN_BY_BROWSER = ("trend",)        # a plotly chart on the screen: the browser draws its image; others the server
DATA_FORMATS = ("csv", "xlsx")
CHART_FORMATS = ("png", "svg")
REPORT_FORMATS = ("pdf", "png")
REPORT_SUBJECTS = ("view", "scope")  # the unit being viewed, or the root of the viewer's scope
