/* Map styling and the clock, run in the browser.
 * The choropleth's colours come from the layer's `hideout` (layouts/map_panel.py map_hideout: {units: {code:
 * [status's place in `states`, value as shown]}, states, colours and words by status, unit, language}), so a new
 * indicator or a refresh restyles the same geometry without downloading it again.
 * Alert badges likewise come from the labels layer's `hideout` ({language, alerts: {code: {n, d, s, o, t}}}, see
 * layouts/map_panel.py labels_hideout): a new hideout redraws the label points, never refetches them.
 * Open incidents are clustered points (layouts/map_panel.py incident_layer): a point is red when overdue and amber
 * when open, a cluster red when any of its incidents is overdue; colours and words come from that layer's hideout. */
(function () {
  "use strict";
  let latest = {units: {}, states: [], colours: {}, words: {}, unit: "", selected: null, language: "zh"};
  let latestAlerts = {};  // the badges last drawn, for the tooltips

  // A unit's status in the hideout's words ("nodata" for a unit it does not list).
  function statusOf(hideout, entry) {
    return (entry && hideout.states[entry[0]]) || "nodata";
  }

  function unitStyle(feature, context) {
    const hideout = (context && context.hideout) || latest;
    latest = hideout;
    drawnHideouts[GEOMETRY_LAYERS.children] = hideout;
    const status = statusOf(hideout, hideout.units[feature.properties.code]);
    const colour = hideout.colours[status] || "#3a4556";
    const selected = hideout.selected === feature.properties.code;
    const style = {
      color: selected ? "#ffffff" : "#0a111e",
      weight: selected ? 3 : 1,
      opacity: 1,
      fillColor: colour,
      fillOpacity: status === "normal" ? 0.45 : status === "nodata" ? 0.08 : 0.8,
    };
    if (status === "stale") {
      style.dashArray = "4 3";
      style.fillOpacity = 0.35;
    }
    if (status === "nodata") {
      style.color = "#56657c";
    }
    return style;
  }

  function hoverStyle() {
    return {weight: 3, color: "#ffffff"};
  }

  function escapeHtml(text) {
    const span = document.createElement("span");
    span.textContent = text == null ? "" : String(text);
    return span.innerHTML;
  }

  function bindTooltip(feature, layer) {
    // Read the newest hideout each time the tooltip opens: values change, the feature does not.
    layer.bindTooltip(function () {
      const properties = feature.properties;
      const entry = latest.units[properties.code];
      const name = (latest.language === "en" && properties.name_en) || properties.name_zh;
      const alerts = latestAlerts[properties.code];
      const alertLine = alerts ? "<br><span class=\"tooltip-alerts alert-" + escapeHtml(alerts.s) + "\">"
        + escapeHtml(alerts.t) + "</span>" : "";
      if (!entry) {
        return "<b>" + escapeHtml(name) + "</b>" + alertLine;
      }
      return "<b>" + escapeHtml(name) + "</b><br>"
        + escapeHtml(entry[1] + " " + latest.unit + " · " + (latest.words[statusOf(latest, entry)] || ""))
        + alertLine;
    }, {sticky: true, className: "unit-tooltip", direction: "top"});
  }

  // The badge beside a unit's name: its open alerts in the worst severity's colour, then the overdue ones.
  function alertBadge(entry) {
    const badge = document.createElement("span");
    badge.className = "alert-badge alert-" + (entry.s === "critical" ? "critical" : "warning");
    badge.dataset.open = String(entry.n);
    badge.dataset.overdue = String(entry.d || 0);
    const count = document.createElement("span");
    count.className = "alert-badge-count";
    count.textContent = String(entry.n);
    badge.appendChild(count);
    if (entry.d > 0) {
      const overdue = document.createElement("span");
      overdue.className = "alert-badge-overdue";
      overdue.textContent = entry.o;
      badge.appendChild(overdue);
    }
    return badge;
  }

  function label(feature, latlng, context) {
    const hideout = (context && context.hideout) || {};
    drawnHideouts[GEOMETRY_LAYERS.labels] = hideout;
    const language = hideout.language || "zh";
    latestAlerts = hideout.alerts || {};
    const name = language === "zh" ? feature.properties.name_zh : feature.properties.name_en;
    const text = document.createElement("span");
    text.dataset.code = feature.properties.code;
    const written = document.createElement("span");
    written.className = "unit-label-name";
    written.textContent = name;  // names come from imported files: never insert them as HTML
    text.appendChild(written);
    const alerts = latestAlerts[feature.properties.code];
    if (alerts && alerts.n > 0) {
      text.appendChild(alertBadge(alerts));
      // What `declutter` places first: critical before warning, then more open alerts before fewer.
      text.dataset.rank = String((alerts.s === "critical" ? 2 : 1) * 1e6 + alerts.n);
    }
    return L.marker(latlng, {
      icon: L.divIcon({className: "unit-label", html: text.outerHTML, iconSize: null}),
      interactive: false, keyboard: false,
    });
  }

  // ---- Labels that do not overlap ---------------------------------------------------------------------------
  // Where units are small on the screen (a city's centre, a street's communities, a wall seen from across the
  // room) names would be written over one another, and none could be read. Whenever the labels change or move,
  // they are laid out again, most important first: units with critical alerts, then warnings (more open alerts
  // first), then the others in the layer's order. A label that would touch one already placed is written a line
  // above or below its point if that is clear, else keeps only its alert badge, centred on the unit, if that fits;
  // otherwise it is not shown (the unit's tooltip still names it).
  const LABEL_GAP = 3;  // px kept clear around each label
  // A badge alone stands further off: right beside another label's badge it would read as that unit's.
  const BADGE_GAP = 10;
  const LABEL_SHIFT = 1.15;  // a moved label's offset, in its own heights (assets/style.css .label-up, .label-down)

  function shifted(box, dy) {
    return {left: box.left, right: box.right, top: box.top + dy, bottom: box.bottom + dy};
  }

  function overlaps(box, placed, gap) {
    const clear = gap === undefined ? LABEL_GAP : gap;
    return placed.some(function (other) {
      return box.left < other.right + clear && other.left < box.right + clear
        && box.top < other.bottom + clear && other.top < box.bottom + clear;
    });
  }

  function declutter(pane) {
    const labels = Array.prototype.slice.call(pane.querySelectorAll(".unit-label"));
    labels.forEach(function (marker) {
      marker.classList.remove("label-compact", "label-hidden", "label-up", "label-down");
    });
    const container = pane.closest(".leaflet-container");
    if (!container || !container.offsetWidth || !container.offsetHeight) {
      return;  // a map not shown has no boxes to compare: laid out when it is shown (its size changes)
    }
    // Every box read before any class is set: one layout, not one per label.
    const measured = labels.map(function (marker, order) {
      const text = marker.querySelector("[data-code]");
      const written = marker.querySelector(".unit-label-name");
      const badge = marker.querySelector(".alert-badge");
      if (!text || !written) {
        return null;
      }
      const name = written.getBoundingClientRect();
      const anchor = marker.getBoundingClientRect();  // the marker's corner is the unit's point
      let whole = {left: name.left, right: name.right, top: name.top, bottom: name.bottom};
      let compact = null;
      if (badge) {
        const box = badge.getBoundingClientRect();
        whole = {left: Math.min(whole.left, box.left), right: Math.max(whole.right, box.right),
                 top: Math.min(whole.top, box.top), bottom: Math.max(whole.bottom, box.bottom)};
        compact = {left: anchor.left - box.width / 2, right: anchor.left + box.width / 2,
                   top: anchor.top - box.height / 2, bottom: anchor.top + box.height / 2};
      }
      const shift = LABEL_SHIFT * text.getBoundingClientRect().height;
      return {marker: marker, order: order, rank: Number(text.dataset.rank || 0), whole: whole, compact: compact,
              shift: shift};
    }).filter(Boolean);
    measured.sort(function (a, b) { return b.rank - a.rank || a.order - b.order; });
    const placed = [];
    measured.forEach(function (label) {
      const up = shifted(label.whole, -label.shift), down = shifted(label.whole, label.shift);
      if (!overlaps(label.whole, placed)) {
        placed.push(label.whole);
      } else if (!overlaps(up, placed)) {
        placed.push(up);
        label.marker.classList.add("label-up");
      } else if (!overlaps(down, placed)) {
        placed.push(down);
        label.marker.classList.add("label-down");
      } else if (label.compact && !overlaps(label.compact, placed, BADGE_GAP)) {
        placed.push(label.compact);
        label.marker.classList.add("label-compact");
      } else {
        label.marker.classList.add("label-hidden");
      }
    });
  }

  // Each map's marker pane is watched from the moment it exists: labels added or replaced (a drill-down, a new
  // hideout) and labels moved (a zoom, a resize) are laid out again in the next frame, before it is painted.
  function watchLabels() {
    function attach(pane) {
      if (pane.dataset.labelsWatched) {
        return;
      }
      pane.dataset.labelsWatched = "1";
      let queued = false;
      function run() {
        queued = false;
        declutter(pane);
      }
      function queue() {
        if (!queued) {
          queued = true;
          requestAnimationFrame(run);
        }
      }
      new MutationObserver(queue).observe(pane, {childList: true, subtree: true, attributes: true,
                                                 attributeFilter: ["style"]});
      // The map's box resized (a wall's layout, a window, a map shown again): Leaflet moves the labels only when it
      // is told of the new size, and a map that was not shown had none to lay out.
      const container = pane.closest(".leaflet-container");
      if (container && window.ResizeObserver) {
        new ResizeObserver(queue).observe(container);
      }
      run();
    }
    // The screen's one map is made once and kept for the page's life (layouts/page.py): once its pane is
    // watched, the document is not (every refresh would otherwise run this search).
    function attachAll() {
      const panes = document.querySelectorAll(".leaflet-marker-pane");
      panes.forEach(attach);
      return panes.length > 0;
    }
    if (attachAll()) {
      return;
    }
    const waiting = new MutationObserver(function (changes) {
      if (changes.some(function (change) { return change.addedNodes.length; }) && attachAll()) {
        waiting.disconnect();
      }
    });
    waiting.observe(document.documentElement, {childList: true, subtree: true});
  }

  // ---- Incidents ---------------------------------------------------------------------------------------------
  let incidentWords = {overdue: "", open: "", opened: "{time}", cluster: "{count}"};

  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (whole, name) {
      return name in values ? String(values[name]) : whole;
    });
  }

  function incidentPoint(feature, latlng, context) {
    const hideout = (context && context.hideout) || {};
    incidentWords = hideout.text || incidentWords;
    const overdue = Number(feature.properties.overdue) === 1;
    const dot = document.createElement("span");
    dot.className = "incident-dot " + (overdue ? "incident-overdue" : "incident-open");
    dot.style.background = ((hideout.colours || {})[overdue ? "overdue" : "open"]) || "";
    return L.marker(latlng, {
      icon: L.divIcon({className: "incident-marker", html: dot.outerHTML, iconSize: [14, 14]}),
      keyboard: false,
    });
  }

  // How many of a cluster's incidents are overdue: its leaves, read from the supercluster index.
  function overdueIn(feature, index) {
    if (!index || !feature.properties.cluster_id) {
      return 0;
    }
    return index.getLeaves(feature.properties.cluster_id, Infinity)
      .reduce(function (sum, leaf) { return sum + (Number(leaf.properties.overdue) === 1 ? 1 : 0); }, 0);
  }

  function incidentCluster(feature, latlng, index, context) {
    const hideout = (context && context.hideout) || {};
    const count = feature.properties.point_count;
    const overdue = overdueIn(feature, index);
    const bubble = document.createElement("div");
    bubble.className = "incident-cluster " + (overdue > 0 ? "incident-overdue" : "incident-open");
    bubble.style.borderColor = ((hideout.colours || {})[overdue > 0 ? "overdue" : "open"]) || "";
    bubble.dataset.count = String(count);
    bubble.dataset.overdue = String(overdue);
    bubble.textContent = feature.properties.point_count_abbreviated;
    const size = count < 10 ? 30 : count < 100 ? 36 : 44;
    const marker = L.marker(latlng, {
      icon: L.divIcon({className: "incident-cluster-marker", html: bubble.outerHTML, iconSize: [size, size]}),
      keyboard: false,
    });
    const words = hideout.text || incidentWords;
    marker.bindTooltip(escapeHtml(fill(words.cluster, {count: count, overdue: overdue})),
                       {className: "unit-tooltip", direction: "top"});
    return marker;
  }

  // A point's tooltip: category, state, when it was opened, where. Never anything about the requester: the
  // points carry nothing of the kind (cityops/incident_layer.py).
  function incidentTooltip(feature, layer) {
    const properties = feature.properties || {};
    if (properties.cluster) {
      return;
    }
    layer.bindTooltip(function () {
      const overdue = Number(properties.overdue) === 1;
      return "<b>" + escapeHtml(properties.category) + "</b> · <span class=\"incident-state "
        + (overdue ? "incident-overdue" : "incident-open") + "\">"
        + escapeHtml(overdue ? incidentWords.overdue : incidentWords.open) + "</span><br>"
        + escapeHtml(fill(incidentWords.opened, {time: properties.opened})) + "<br>" + escapeHtml(properties.address);
    }, {className: "unit-tooltip incident-tooltip", direction: "top"});
  }

  const clockFormats = {};

  function clock(zone, language) {
    const now = new Date();
    const locale = language === "en" ? "en-GB" : "zh-CN";
    try {
      // Building an Intl.DateTimeFormat takes milliseconds: once per zone and language, not once a second.
      const key = zone + "|" + locale;
      const formats = clockFormats[key] || (clockFormats[key] = [
        new Intl.DateTimeFormat(locale, {timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
                                         weekday: "short"}),
        new Intl.DateTimeFormat(locale, {timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit",
                                         hour12: false}),
      ]);
      return formats[0].format(now) + " " + formats[1].format(now);
    } catch (error) {
      return now.toLocaleTimeString();
    }
  }

  // A promise of the moment something has been painted: once `selector` matches, one more frame. The screen
  // loads in that order: the map's polygons first, then the other panels, then the charts (which load
  // plotly.js), so that nothing later delays what comes before. Gives up after `timeoutMs` (a map without
  // boundaries, a failed request): what waits must come anyway.
  function painted(selector, timeoutMs) {
    return new Promise(function (resolve) {
      let done = false, observer = null, timer = null;
      function finish() {
        if (done) {
          return;
        }
        done = true;
        if (observer) {
          observer.disconnect();
        }
        clearTimeout(timer);
        requestAnimationFrame(function () { setTimeout(function () { resolve(Date.now()); }, 0); });
      }
      if (document.querySelector(selector)) {
        finish();
        return;
      }
      observer = new MutationObserver(function () {
        if (document.querySelector(selector)) {
          finish();
        }
      });
      observer.observe(document.body, {childList: true, subtree: true});
      timer = setTimeout(finish, timeoutMs || 3000);
    });
  }

  // PageIds.MAP_PAINTED (layouts/ids.py) is set from here rather than by a Dash callback: a callback running while
  // the page first renders makes Dash re-run every mounted component's store selector for each step it takes,
  // and the polygons waited for that (bench/first_screen.py). Once Dash has rendered the map (so the store exists
  // in its layout), wait for the polygons, then tell Dash; the panels and charts follow from there.
  const MAP_PAINTED_STORE = "map-painted";

  function watchFirstPaint() {
    const mapShown = new Promise(function (resolve) {
      if (document.querySelector(".leaflet-container")) {
        resolve();
        return;
      }
      const observer = new MutationObserver(function () {
        if (document.querySelector(".leaflet-container")) {
          observer.disconnect();
          resolve();
        }
      });
      observer.observe(document.body, {childList: true, subtree: true});
    });
    mapShown
      .then(function () { return painted("path.leaflet-interactive", 3000); })
      .then(function (at) { window.dash_clientside.set_props(MAP_PAINTED_STORE, {data: at}); });
  }

  // dash-leaflet's GeoJSON layer ignores every prop change that arrives while it is loading its `url` (and draws
  // what it was loading when done, with the hideout it had): a level change right after another (a deep link, then
  // a wall's first playlist step; a drill-down and straight back before the boundaries arrived) left the first
  // level's polygons and labels under the second's title, and an indicator chosen while a drill-down's boundaries
  // loaded left the first indicator's colours under the second's legend, until some later change. Each layer's
  // URL and hideout as Dash last set them (callbacks/map.py) are noted here, and so are the URL whose body each
  // layer read last and the hideout it last drew with; while they differ, the layer is given its URL or hideout
  // again until it listens (it is done only once it has decoded and drawn, which may wait for geobuf's decoder).
  const GEOMETRY_LAYERS = {children: "map-units", labels: "map-labels"};  // layouts/ids.py MapIds
  const CATCH_UP_MS = [0, 100, 400, 1500, 5000];
  const askedUrls = {};
  const readUrls = {};
  const askedHideouts = {};
  const drawnHideouts = {};

  function asked(unitsUrl, labelsUrl, unitsHideout, labelsHideout) {
    askedUrls[GEOMETRY_LAYERS.children] = unitsUrl;
    askedUrls[GEOMETRY_LAYERS.labels] = labelsUrl;
    askedHideouts[GEOMETRY_LAYERS.children] = unitsHideout;
    askedHideouts[GEOMETRY_LAYERS.labels] = labelsHideout;
  }

  function pathOf(url) {
    return new URL(url, window.location.href).pathname;
  }

  function catchUp(layer) {
    const wanted = askedUrls[layer];
    if (wanted && readUrls[layer] && pathOf(wanted) !== pathOf(readUrls[layer])) {
      window.dash_clientside.set_props(layer, {url: wanted});
      return;
    }
    // Compared by content: the layer may hand its style functions a copy. A new object makes it restyle.
    const colours = askedHideouts[layer], drawn = drawnHideouts[layer];
    if (colours && drawn && JSON.stringify(colours) !== JSON.stringify(drawn)) {
      window.dash_clientside.set_props(layer, {hideout: Object.assign({}, colours)});
    }
  }

  function catchUpWithGeometry() {
    const nativeFetch = window.fetch.bind(window);
    window.fetch = function (resource, init) {
      const url = String((resource && resource.url) || resource || "");  // a text, a URL or a Request
      const kind = /\/geo\/[^/?#]+\/(children|labels)\.[a-z]+(?=[?#]|$)/.exec(url);
      if (!kind) {
        return nativeFetch(resource, init);
      }
      const layer = GEOMETRY_LAYERS[kind[1]];
      function read() {
        readUrls[layer] = url;
        CATCH_UP_MS.forEach(function (ms) { setTimeout(function () { catchUp(layer); }, ms); });
      }
      return nativeFetch(resource, init).then(function (response) {
        ["arrayBuffer", "json", "text"].forEach(function (method) {
          const readBody = response[method].bind(response);
          response[method] = function () {
            const body = readBody();
            body.then(read, read);
            return body;
          };
        });
        return response;
      });
    };
  }

  catchUpWithGeometry();
  watchFirstPaint();
  watchLabels();

  window.onescreen = Object.assign({}, window.onescreen, {
    map: {unitStyle: unitStyle, hoverStyle: hoverStyle, bindTooltip: bindTooltip, label: label,
          incidentPoint: incidentPoint, incidentCluster: incidentCluster, incidentTooltip: incidentTooltip,
          asked: asked},
    painted: painted,
    clock: clock,
  });
})();
