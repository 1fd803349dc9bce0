// Draws the dashboard's trend chart from the JSON the server rendered into data-chart (no data is fetched here).
(function () {
  "use strict";
  // Colour-blind-safe: blue for the data, orange dashed for the target path, grey dotted for the projection.
  var BLUE = "#006ba4", ORANGE = "#c85200", GREY = "#595959";

  function draw(el) {
    if (!window.echarts || el.dataset.chartReady) { return; }
    var data = JSON.parse(el.dataset.chart);
    var labels = JSON.parse(el.dataset.labels);
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    var numbers = window.circuflowNumbers;
    chart.setOption({
      animation: false,
      grid: { left: 48, right: 16, top: 32, bottom: 32 },
      legend: { top: 0 },
      // Years are plain integers (2025, never 2,025.00), rates as published (truncated to 0.1 pt).
      tooltip: { trigger: "axis", valueFormatter: numbers.rate },
      xAxis: { type: "value", min: "dataMin", max: "dataMax", minInterval: 1, axisLabel: { formatter: numbers.year },
               axisPointer: { label: { formatter: function (p) { return numbers.year(p.value); } } } },
      yAxis: { type: "value", min: function (v) { return Math.max(0, Math.floor(v.min / 5) * 5 - 5); }, max: 100,
               axisLabel: { formatter: function (v) { return v + "%"; } } },
      series: [
        { name: labels.rate, type: "line", color: BLUE, symbolSize: 8,
          data: data.years.map(function (y, i) { return [y, data.rates[i]]; }) },
        { name: labels.path, type: "line", color: ORANGE, lineStyle: { type: "dashed" }, symbol: "diamond",
          symbolSize: 10, data: data.targets },
        { name: labels.projection, type: "line", color: GREY, lineStyle: { type: "dotted" }, data: data.projection }
      ]
    });
    el.dataset.chartReady = "true";
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }
  document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  document.addEventListener("htmx:afterSettle", function (evt) { drawAll(evt.target); });
})();
