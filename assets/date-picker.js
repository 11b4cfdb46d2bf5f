/* The custom range's calendar (dcc.DatePickerRange) names months and weekdays with date-fns, in the locale of
 * window.dateFns.locale that matches the BROWSER's languages, else the first one there, else English. The screen's
 * language is the viewer's 中/EN choice (<html lang>, fixed for the page: switching reloads), not the browser's, so
 * only that language's locale is left there. Done once the page's scripts have run (the vendored zh-CN locale in
 * assets/vendor/ is among them: Dash loads assets/ before its subfolders); the calendar's own code arrives later.
 */
(function () {
  function keepTheScreensLanguage() {
    const locales = (window.dateFns && window.dateFns.locale) || {};
    const chinese = (document.documentElement.lang || "").toLowerCase().indexOf("zh") === 0;
    window.dateFns = Object.assign({}, window.dateFns, {locale: chinese && locales.zhCN ? {zhCN: locales.zhCN} : {}});
  }

  document.addEventListener("DOMContentLoaded", keepTheScreensLanguage);
})();
