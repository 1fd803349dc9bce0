// Numbers as the pages write them, for charts and map tooltips: the rules of flows/kernel/numbers.py (tonnes in
// 万吨 or kt/Mt from the threshold the server puts on <body data-wan-threshold>, rates and percentages to 0.1).
(function () {
  "use strict";
  var MINUS = "\u2212";

  // Half-up to two decimals on the decimal text, so that 2.675 gives 2.68 as in Python's Decimal, not 2.67.
  function hundredths(value) {
    return Math.round(Number(Math.abs(value).toFixed(6)) * 100 + 1e-9) / 100;
  }

  function grouped(value, digits) {
    var parts = value.toFixed(digits).split(".");
    parts[0] = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return parts.join(".");
  }

  function signed(text, negative, plus) {
    return (negative ? MINUS : plus ? "+" : "") + text;
  }

  function language() {
    return document.documentElement.lang === "en" ? "en" : "zh-CN";
  }

  function threshold() {
    var given = parseFloat(document.body && document.body.dataset.wanThreshold);
    return isNaN(given) ? 10000 : given;
  }

  function tonnes(value, options) {
    if (value == null || isNaN(value)) { return "–"; }
    var opts = options || {};
    var lang = opts.lang || language();
    var chinese = lang === "zh-CN";
    var shown = hundredths(value);
    var unit = chinese ? "吨" : "t";
    if (shown >= (opts.threshold == null ? threshold() : opts.threshold)) {
      if (chinese) {
        shown = hundredths(value / 10000); unit = "万吨";
      } else {
        shown = hundredths(value / 1000); unit = "kt";
        if (shown >= 1000) { shown = hundredths(value / 1000000); unit = "Mt"; }
      }
    }
    return signed(grouped(shown, 2), value < 0 && shown !== 0, opts.signed && shown !== 0) + " " + unit;
  }

  // A rate already in percent, as published: truncated to 0.1, never rounded up.
  function rate(percent) {
    if (percent == null || isNaN(percent)) { return "–"; }
    var shown = Math.floor(Number(Math.abs(percent).toFixed(6)) * 10 + 1e-9) / 10;
    return signed(shown.toFixed(1), percent < 0 && shown !== 0, false) + "%";
  }

  function year(value) {
    return String(Math.round(value));
  }

  window.circuflowNumbers = { tonnes: tonnes, rate: rate, year: year };
})();
