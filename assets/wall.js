/* The wall display: the same page as a kiosk, at /wall (under any prefix the app is served at) or with
 * ?mode=wall. Dash serves the same page for every path, and runs this file before it renders the layout, so the
 * page is a wall from its first frame: html.wall (assets/wall.css: no controls, no cursor, type for 5 m, the
 * layout for the wall's shape), nothing focusable or clickable (the body is inert), and no key, wheel, right
 * click or drag that could scroll, navigate or leave it.
 *
 * Then, with callbacks/wall.py: `start` says the page is a wall once the map has painted; `follow` takes the
 * plan and the alert watch the server sends; and a timer here, every second, works out what the wall shows (the
 * alert holding it, or the playlist's slot of the server's clock), setting WallIds.CUE only when that changes,
 * and highlights the held alert's row.
 *
 * Nothing grows: one <style> element, a few numbers — and Dash's own undo history, which records every prop a
 * component sets (each tick of a dcc.Interval, such as the page's clock and refresh, adds one, forever), is cut
 * back to its last few entries every ten seconds, on a wall and on the ordinary screen alike (a control room may
 * leave either open for weeks). The screen has no undo. */
(function () {
  "use strict";
  const path = window.location.pathname.replace(/\/+$/, "");
  const isWall = /(^|\/)wall$/.test(path) || new URLSearchParams(window.location.search).get("mode") === "wall";
  const HISTORY_KEPT = 20;
  let offset = 0;          // the server's clock minus this browser's, in ms: every wall counts the same slots
  let plan = null;         // {dwell, now} from the server
  let watch = null;        // {seen, holds: [{alert, severity, until}], now} from the server
  let shown = null;        // the cue last given to Dash: {slot: n} or {alert: id}
  let timer = null;
  let ticks = 0;
  let highlighted = null;  // the alert whose row is highlighted
  let focusStyle = null;   // the one <style> element saying which row that is

  function swallow(event) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }

  function becomeKiosk() {
    document.body.inert = true;  // nothing can take focus, be clicked, hovered or selected
  }

  if (isWall) {
    document.documentElement.classList.add("wall");
    // Dash puts its scripts at the end of <body>, so the body exists; the fallback is for other index pages.
    if (document.body) {
      becomeKiosk();
    } else {
      document.addEventListener("DOMContentLoaded", becomeKiosk);
    }
    ["keydown", "keypress", "keyup", "contextmenu", "dragstart", "selectstart", "mousedown", "mouseup", "auxclick",
     "click", "dblclick"].forEach(function (name) {
      window.addEventListener(name, swallow, true);
    });
    ["wheel", "touchmove"].forEach(function (name) {
      window.addEventListener(name, swallow, {capture: true, passive: false});
    });
  }

  // A wall shows whole rows only: a row its list cuts (at the bottom, or at the top while the list is scrolled to
  // a held alert) is hidden (assets/wall.css) rather than showing half a name across the room. Looked at when a
  // list's rows change (before the browser paints them), when its size changes and after each scroll.
  const WHOLE_ROW_LISTS = ".alert-list, .comparison-rows";

  const sized = new WeakSet();  // the lists whose size is watched (a list redrawn whole is a new one)
  let resizes = null;

  function hideCutRows() {
    document.querySelectorAll(WHOLE_ROW_LISTS).forEach(function (list) {
      if (resizes && !sized.has(list)) {
        sized.add(list);
        resizes.observe(list);  // its panel may change size without the window's (a header wrapping, fonts)
      }
      const box = list.getBoundingClientRect();
      Array.prototype.forEach.call(list.children, function (row) {
        const edges = row.getBoundingClientRect();
        const cut = edges.top < box.top - 0.5 || edges.bottom > box.bottom + 0.5;
        if (row.hasAttribute("data-cut") !== cut) {
          row.toggleAttribute("data-cut", cut);
        }
      });
    });
  }

  let watchingRows = false;

  function watchRows() {
    if (watchingRows) {
      return;
    }
    watchingRows = true;
    // Only changes inside a list matter; the clock and the map change the page every second.
    new MutationObserver(function (changes) {
      const inList = changes.some(function (change) {
        const node = change.target.nodeType === Node.ELEMENT_NODE ? change.target : change.target.parentElement;
        return Boolean(node && (node.closest(WHOLE_ROW_LISTS) || node.querySelector(WHOLE_ROW_LISTS)));
      });
      if (inList) {
        hideCutRows();
      }
    }).observe(document.body, {childList: true, subtree: true, characterData: true});
    if (typeof ResizeObserver === "function") {
      resizes = new ResizeObserver(hideCutRows);
    }
    window.addEventListener("resize", hideCutRows);
    if (document.fonts) {
      document.fonts.ready.then(hideCutRows);  // rows change height once their font has come
    }
    hideCutRows();
  }

  function start() {
    if (isWall) {
      watchRows();
    }
    return isWall ? true : window.dash_clientside.no_update;
  }

  // Dash keeps every prop change a component made, for an undo this screen does not offer: keep the last few.
  function trimHistory() {
    const store = window.store;
    const history = store && typeof store.getState === "function" ? store.getState().history : null;
    if (history && Array.isArray(history.past) && history.past.length > HISTORY_KEPT) {
      history.past.splice(0, history.past.length - HISTORY_KEPT);
    }
  }

  function highlight(alertId) {
    if (alertId === highlighted) {
      return;
    }
    highlighted = alertId;
    if (!focusStyle) {
      focusStyle = document.createElement("style");
      focusStyle.id = "wall-focus";
      document.head.appendChild(focusStyle);
    }
    // The row is found by its data-alert, so the highlight survives the list being redrawn (assets/wall.css).
    focusStyle.textContent = alertId === null ? "" :
      'html.wall .alert-row[data-alert="' + Number(alertId) + '"] { box-shadow: var(--wall-focus-ring); ' +
      'background: var(--wall-focus-background); }';
    if (alertId === null) {
      document.querySelectorAll(".alert-list").forEach(function (list) { list.scrollTop = 0; });
      hideCutRows();
    }
  }

  // The held alert's row in view in its list (the list scrolls only this way: a wall has no scrollbars).
  function keepInView() {
    if (highlighted === null) {
      return;
    }
    const row = document.querySelector('.alert-row[data-alert="' + Number(highlighted) + '"]');
    const list = row && row.closest(".alert-list");
    if (!list) {
      return;
    }
    // Measured on the screen: offsetTop counts from the nearest positioned ancestor, which the list may become.
    const top = row.getBoundingClientRect().top - list.getBoundingClientRect().top + list.scrollTop;
    if (top < list.scrollTop || top + row.offsetHeight > list.scrollTop + list.clientHeight) {
      list.scrollTop = Math.max(0, top - 4);
      hideCutRows();
    }
  }

  function same(a, b) {
    return Boolean(a && b) && a.alert === b.alert && a.slot === b.slot;
  }

  // What the wall shows now: the alert holding it (the holds run back to back: the first not yet over), else
  // the playlist's slot; null before the plan has come.
  function cue() {
    const now = (Date.now() + offset) / 1000;
    const holds = watch && Array.isArray(watch.holds) ? watch.holds : [];
    const hold = holds.find(function (h) { return typeof h.until === "number" && h.until > now; });
    highlight(hold ? hold.alert : null);
    keepInView();
    if (hold) {
      return {alert: hold.alert};
    }
    if (plan && typeof plan.dwell === "number" && plan.dwell > 0) {
      return {slot: Math.floor(now / plan.dwell)};
    }
    return null;
  }

  function tick() {
    ticks += 1;
    if (ticks % 10 === 0) {
      trimHistory();
    }
    const next = cue();
    if (next && !same(next, shown)) {
      shown = next;
      window.dash_clientside.set_props("wall-cue", {data: next});
    }
  }

  // The plan and the watch as the server sent them (with its time): the cue at once, then the timer keeps it.
  function follow(newPlan, newWatch) {
    const triggered = (window.dash_clientside.callback_context.triggered || []).map(function (t) {
      return t.prop_id;
    });
    if (triggered.indexOf("wall-plan.data") >= 0 && newPlan && typeof newPlan.now === "number") {
      offset = newPlan.now * 1000 - Date.now();
    }
    if (triggered.indexOf("wall-watch.data") >= 0 && newWatch && typeof newWatch.now === "number") {
      offset = newWatch.now * 1000 - Date.now();
    }
    plan = newPlan || null;
    watch = newWatch || null;
    if (timer === null && isWall) {
      timer = setInterval(tick, 1000);
    }
    const next = cue();
    if (!next || same(next, shown)) {
      return window.dash_clientside.no_update;
    }
    shown = next;
    return next;
  }

  if (!isWall) {
    setInterval(trimHistory, 10000);  // a wall trims in its own timer (tick)
  }

  window.onescreen = Object.assign({}, window.onescreen, {wall: {isWall: isWall, start: start, follow: follow},
                                                          historyKept: HISTORY_KEPT});
})();
