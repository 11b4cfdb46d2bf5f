/* Navigation in the browser: the selection mirrored in the URL and the browser's history, the selector following
 * the selection, keys in the unit search's list, and the language switch. See callbacks/navigation.py.
 *
 * The history is kept here rather than by dcc.Location (which can only push): a drill-down or another indicator
 * pushes an entry, the answer to a URL that asked for something unusable replaces it, and a wall (/wall or
 * ?mode=wall, whose playlist changes the view every few seconds) never touches it. dcc.Location is then told the
 * URL it now shows, so that back and forward (which it reports) compare against the right one. */
(function () {
  "use strict";
  const VIEW_KEYS = ["unit", "indicator", "range", "start", "end", "compare"];
  const URL_ID = "url";
  const SELECTOR_ID = "header-indicator";
  const LANGUAGE_COOKIE = "onescreen-language";

  function noUpdate() {
    return window.dash_clientside.no_update;
  }

  // The query (without "?") of a selection: only what differs from the defaults, in VIEW_KEYS order. Kept
  // identical to layouts/navigation.py view_query (tests/browser/test_navigation.py compares them).
  function viewQuery(selection, defaults) {
    const pairs = [];
    selection = selection || {};
    defaults = defaults || {};
    if (typeof selection.unit === "string" && selection.unit) {
      pairs.push(["unit", selection.unit]);
    }
    if (typeof selection.indicator === "string" && selection.indicator && selection.indicator !== defaults.indicator) {
      pairs.push(["indicator", selection.indicator]);
    }
    if (selection.range === "custom") {
      pairs.push(["range", "custom"]);
      ["start", "end"].forEach(function (key) {
        if (typeof selection[key] === "string") {
          pairs.push([key, selection[key]]);
        }
      });
    } else if (typeof selection.range === "string" && selection.range && selection.range !== defaults.range) {
      pairs.push(["range", selection.range]);
    }
    if (selection.compare === true) {
      pairs.push(["compare", "1"]);
    }
    return pairs.map(function (pair) { return pair[0] + "=" + encodeURIComponent(pair[1]); }).join("&");
  }

  function parts(search) {
    return (search || "").replace(/^\?/, "").split("&").filter(Boolean);
  }

  function isViewPart(part) {
    try {
      return VIEW_KEYS.indexOf(decodeURIComponent(part.split("=")[0].replace(/\+/g, " "))) >= 0;
    } catch (malformed) {
      return false;  // not a name this page wrote ("%%%"): left as it is
    }
  }

  // The view's parameters as the URL has them (in its order); and the URL with the view's replaced, keeping
  // every other parameter (lang, mode, ...) as it was.
  function viewPartOf(search) {
    return parts(search).filter(isViewPart).join("&");
  }

  function withView(search, query) {
    const kept = parts(search).filter(function (part) { return !isViewPart(part); });
    const all = (query ? [query] : []).concat(kept);
    return all.length ? "?" + all.join("&") : "";
  }

  function isWall() {
    return document.documentElement.classList.contains("wall")
      || /\/wall\/?$/.test(window.location.pathname)
      || new URLSearchParams(window.location.search).get("mode") === "wall";
  }

  // The URL was opened or walked to (page load, back, forward): ask the server for its view, unless it is the
  // view shown already (a plain "/" on load asks nothing).
  function read(_search, selection, defaults) {
    const search = window.location.search;
    if (viewPartOf(search) === viewQuery(selection, defaults)) {
      return noUpdate();
    }
    return {search: search, at: Date.now()};
  }

  // The selection changed (or a URL was answered): write it into the URL and the history, and show its indicator
  // in the selector.
  function reflect(selection, applied, defaults, selectorValue) {
    if (isWall()) {
      return;  // no history, and no selector to show (the playlist changes the view every few seconds)
    }
    const setProps = window.dash_clientside.set_props;
    if (selection && typeof selection.indicator === "string" && selectorValue != null
        && selectorValue !== selection.indicator) {
      setProps(SELECTOR_ID, {value: selection.indicator});
    }
    const here = window.location.search;
    const target = withView(here, viewQuery(selection, defaults));
    if (target === here) {
      return;
    }
    // The answer to the URL shown corrects it in place (it asked for a unit out of sight, an unknown indicator);
    // anything else the viewer did is a step back can undo.
    const answering = applied && applied.from === here
      && viewQuery(applied.selection, defaults) === viewQuery(selection, defaults);
    const url = window.location.pathname + target + window.location.hash;
    if (answering) {
      window.history.replaceState(window.history.state, "", url);
    } else {
      window.history.pushState(null, "", url);
    }
    setProps(URL_ID, {search: target, href: window.location.href});
  }

  // Keys in the search: down from the box into the list, up and down through it, Escape back to the box
  // (Enter on a unit is the button's own click; Enter in the box takes the first unit, see n_submit).
  function onSearchKey(event) {
    const box = event.target.closest && event.target.closest(".unit-search");
    if (!box || ["ArrowDown", "ArrowUp", "Escape", "Home", "End"].indexOf(event.key) < 0) {
      return;
    }
    const input = box.querySelector("input");
    const options = Array.prototype.slice.call(box.querySelectorAll(".search-result"));
    const at = options.indexOf(document.activeElement);
    let next = null;
    if (event.key === "Escape") {
      next = at >= 0 ? input : null;
    } else if (!options.length) {
      return;
    } else if (event.key === "ArrowDown") {
      next = options[Math.min(at + 1, options.length - 1)];
    } else if (event.key === "ArrowUp") {
      next = at > 0 ? options[at - 1] : input;
    } else if (at >= 0) {
      next = event.key === "Home" ? options[0] : options[options.length - 1];
    }
    if (next) {
      event.preventDefault();
      next.focus();
      options.forEach(function (option) { option.setAttribute("aria-selected", option === next ? "true" : "false"); });
    }
  }

  // 中 / EN: the choice is kept in a cookie (read by the server for the layout and every callback); the page
  // reloads at the same URL, less any ?lang= that would choose again.
  function switchLanguage(language) {
    if (language !== "zh" && language !== "en") {
      return;
    }
    document.cookie = LANGUAGE_COOKIE + "=" + language + "; path=/; max-age=31536000; SameSite=Lax";
    const url = new URL(window.location.href);
    url.searchParams.delete("lang");
    window.location.replace(url.toString());
  }

  // A click on 中 or EN (not the buttons being drawn, with no clicks), other than the language shown.
  function onLanguageClick(_clicks) {
    const context = window.dash_clientside.callback_context;
    const chosen = context.triggered_id;
    const clicked = (context.triggered || []).some(function (trigger) { return trigger.value; });
    const screen = document.querySelector(".screen");
    if (chosen && clicked && !(screen && screen.lang === chosen.language)) {
      switchLanguage(chosen.language);
    }
  }

  document.addEventListener("keydown", onSearchKey);

  window.onescreen = Object.assign({}, window.onescreen, {
    navigation: {viewQuery: viewQuery, viewPartOf: viewPartOf, withView: withView, read: read, reflect: reflect,
                 switchLanguage: switchLanguage, onLanguageClick: onLanguageClick},
  });
})();
