// Draws the Sankey diagrams from the JSON the server rendered into data-sankey (no data is fetched here).
// data-sankey: {nodes: [{name: id, label: words, depth: column, in, out, held}], links: [{source, target, value}]};
// node names are ids ("c:SW01", "v:transfer", "r:cement_admixture", "o:510400", "m:510400", "d:510400") so that a
// place shipping to itself stays acyclic. Three columns: origin, intermediary (tonnes that passed one), final end;
// an intermediary takes in what it sends on plus what it still holds, which the tooltip says.
(function () {
  "use strict";
  // Tableau colour-blind-safe palette, in order; links take their source's colour, lightened.
  var PALETTE = ["#006ba4", "#ff800e", "#595959", "#5f9ed1", "#c85200", "#898989", "#a2c8ec", "#ffbc79", "#ababab",
    "#cfcfcf"];

  // Tooltips are HTML to ECharts: names come from the database and are escaped.
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function draw(el) {
    if (!window.echarts || el.dataset.chartReady) { return; }
    var data = JSON.parse(el.dataset.sankey);
    var labels = JSON.parse(el.dataset.labels || "{}");
    var words = {};
    var plain = {};
    var byName = {};
    data.nodes.forEach(function (n) { plain[n.name] = n.label; byName[n.name] = n; });
    data.nodes.forEach(function (n) { words[n.name] = escapeHtml(n.label); });
    var fmt = function (v) { return window.circuflowNumbers.tonnes(v); };
    // A place keeps its colour in every column ("o:510400", "m:510400" and "d:510400" are the same prefecture).
    var colours = {};
    var colourOf = function (name) {
      var key = name.slice(2);
      if (!(key in colours)) {
        colours[key] = PALETTE[Object.keys(colours).length % PALETTE.length];
      }
      return colours[key];
    };
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          if (p.dataType === "edge") {
            return words[p.data.source] + " → " + words[p.data.target] + "<br>" + fmt(p.data.value);
          }
          var n = byName[p.name] || {};
          if (n.depth === 1) {
            // An intermediary: what came in, what went on, and what it still holds.
            return words[p.name] + "<br>" + escapeHtml(labels["in"] || "in") + " " + fmt(n["in"]) + "<br>" +
              escapeHtml(labels.out || "out") + " " + fmt(n.out) + "<br>" + escapeHtml(labels.held || "held") + " " +
              fmt(n.held);
          }
          return words[p.name] + "<br>" + fmt(p.value);
        },
      },
      series: [{
        type: "sankey",
        left: 8,
        // Room for the labels of the right-hand column (a quarter of a phone's width).
        right: Math.min(150, Math.round(el.clientWidth * 0.25)),
        top: 12,
        bottom: 12,
        nodeGap: 10,
        nodeWidth: 14,
        nodeAlign: "justify",
        layoutIterations: 32,
        emphasis: { focus: "adjacency" },
        label: {
          color: "#1b2430",
          fontSize: 12,
          // Plain text here (ECharts does not parse labels as HTML): the unescaped words.
          formatter: function (p) { return plain[p.name] || p.name; },
        },
        lineStyle: { color: "source", opacity: 0.35, curveness: 0.5 },
        data: data.nodes.map(function (n) {
          // The column is given: an intermediary that sent nothing on yet stays in the middle, not at the end.
          var node = { name: n.name, depth: n.depth,
            itemStyle: { color: colourOf(n.name), borderColor: "#12304d", borderWidth: 0.5 } };
          if (n.depth === 1) {
            // A middle label wraps within its column, so that it never runs over the right-hand nodes on a phone.
            node.label = { width: Math.max(60, Math.round(el.clientWidth / 3) - 24), overflow: "break" };
          }
          return node;
        }),
        links: data.links,
      }],
    });
    el.dataset.chartReady = "true";
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function drawAll(root) {
    var scope = root && root.querySelectorAll ? root : document;
    scope.querySelectorAll("[data-sankey]").forEach(draw);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  } else {
    drawAll();
  }
  document.addEventListener("htmx:afterSettle", function (evt) { drawAll(evt.target); });
})();
