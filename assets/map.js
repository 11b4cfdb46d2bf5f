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
    const language = hideout.language || "zh";
    latestAlerts = hideout.alerts || {};
    const name = language === "zh" ? feature.properties.name_zh : feature.properties.name_en;
    const text = document.createElement("span");
    text.textContent = name;  // names come from imported files: never insert them as HTML
    text.dataset.code = feature.properties.code;
    const alerts = latestAlerts[feature.properties.code];
    if (alerts && alerts.n > 0) {
      text.appendChild(alertBadge(alerts));
    }
    return L.marker(latlng, {
      icon: L.divIcon({className: "unit-label", html: text.outerHTML, iconSize: null}),
      interactive: false, keyboard: false,
    });
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

  watchFirstPaint();

  window.onescreen = Object.assign({}, window.onescreen, {
    map: {unitStyle: unitStyle, hoverStyle: hoverStyle, bindTooltip: bindTooltip, label: label,
          incidentPoint: incidentPoint, incidentCluster: incidentCluster, incidentTooltip: incidentTooltip},
    painted: painted,
    clock: clock,
  });
})();
