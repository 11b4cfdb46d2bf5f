/* Exports in the browser (callbacks/exports.py):
 * - the export menus (<details>) close after a choice, on a click elsewhere and on Escape;
 * - draw_chart turns the chart a panel shows into a PNG or SVG file, restyled for paper (white, dark text, the
 *   same status colours), with the title and stamp line the server wrote, at the size it asked for.
 */
(function () {
  "use strict";

  const INK = "#1b2533", MUTED = "#5b6b82", GRID = "#e6ebf2", RULE = "#c9d2de";
  // The screen's trend line (light blue on dark) is too pale on paper.
  const SCREEN_TO_PAPER = {"#8fb8ff": "#2f6bd6"};

  function closeMenus(except) {
    document.querySelectorAll("details.export-menu[open]").forEach(function (menu) {
      if (menu !== except) { menu.removeAttribute("open"); }
    });
  }

  document.addEventListener("click", function (event) {
    const menu = event.target.closest ? event.target.closest("details.export-menu") : null;
    if (menu && event.target.closest(".export-item")) {
      menu.removeAttribute("open");  // a choice was made
      return;
    }
    closeMenus(menu);  // a click elsewhere (or on another menu) closes the open one
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { closeMenus(null); }
  });

  function paperAxis(axis) {
    const copy = Object.assign({}, axis || {});
    copy.gridcolor = GRID;
    copy.linecolor = RULE;
    copy.tickfont = Object.assign({}, copy.tickfont, {color: MUTED});
    if (copy.title) {
      const title = typeof copy.title === "string" ? {text: copy.title} : Object.assign({}, copy.title);
      title.font = Object.assign({}, title.font, {color: MUTED});
      copy.title = title;
    }
    return copy;
  }

  function paperTrace(trace) {
    const copy = Object.assign({}, trace);
    if (copy.line && SCREEN_TO_PAPER[copy.line.color]) {
      copy.line = Object.assign({}, copy.line, {color: SCREEN_TO_PAPER[copy.line.color]});
    }
    return copy;
  }

  function paperFigure(graph, request) {
    const layout = JSON.parse(JSON.stringify(graph.layout || {}));
    Object.keys(layout).forEach(function (key) {
      if (/^[xy]axis\d*$/.test(key)) { layout[key] = paperAxis(layout[key]); }
    });
    const font = Object.assign({}, layout.font, {color: INK});
    font.size = Math.min(font.size || 13, 14);
    const footnote = {text: request.footnote, xref: "paper", yref: "paper", x: 0, y: 0, xanchor: "left",
                      yanchor: "top", yshift: -46, showarrow: false, font: {size: 11, color: MUTED}};
    Object.assign(layout, {
      width: request.width, height: request.height, autosize: false, font: font,
      paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
      margin: {l: 80, r: 40, t: 96, b: 96},
      title: {text: request.title, x: 0.02, xanchor: "left", y: 0.96, font: {size: 22, color: INK}},
      annotations: (layout.annotations || []).concat([footnote]),
    });
    return {data: (graph.data || []).map(paperTrace), layout: layout};
  }

  function dataUrlContent(url) {
    const comma = url.indexOf(",");
    const head = url.slice(0, comma), body = url.slice(comma + 1);
    return head.indexOf(";base64") >= 0 ? {content: body, base64: true} : {content: decodeURIComponent(body),
                                                                           base64: false};
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.onescreen_exports = {
    draw_chart: function (request) {
      const noUpdate = window.dash_clientside.no_update;
      if (!request || !request.graph) { return [noUpdate, noUpdate]; }
      const holder = document.getElementById(request.graph);
      const graph = holder && holder.querySelector(".js-plotly-plot");
      if (!graph || !graph.data || !window.Plotly) {
        // Said in the status line, as a new element (a new key) like the server's messages.
        return [noUpdate, {namespace: "dash_html_components", type: "Span",
                           props: {children: request.unavailable, key: String(Date.now()),
                                   className: "export-status-line", "data-outcome": "failed"}}];
      }
      const figure = paperFigure(graph, request);
      return window.Plotly.toImage(figure, {format: request.format, width: request.width,
                                            height: request.height, scale: 1})
        .then(function (url) {
          const file = dataUrlContent(url);
          return [Object.assign(file, {filename: request.filename,
                                       type: request.format === "svg" ? "image/svg+xml" : "image/png"}),
                  noUpdate];
        });
    },
  };
}());
