/* circuflow battery trace: numbers on the custody path's points, so that the map reads like the list beside it.
 *
 * map.js draws the overlay (the dashed path and one circle per custodian's place); this adds each place's number(s)
 * (properties.number) on top of its circle as a label that takes no clicks or focus. Two custodians a few kilometres
 * apart would hide each other's numbers at the province's scale: after every zoom, a label that would overlap an
 * earlier one is moved aside along a short leader line, so that every number stays readable.
 */
(function () {
  "use strict";

  var SIZE = 26; // px a label needs; labels closer than this are moved apart

  function labelIcon(text, current, dx, dy) {
    var span = document.createElement("span");
    span.textContent = text;
    return L.divIcon({
      className: "trace-num" + (current ? " trace-num--current" : ""),
      html: span.outerHTML,
      iconSize: [SIZE, SIZE],
      iconAnchor: [SIZE / 2 - dx, SIZE / 2 - dy],
    });
  }

  // Offsets tried, in order, for a label that would cover an earlier one: right, up, left, down, then further out.
  var NUDGES = [];
  [1, 2, 3].forEach(function (ring) {
    [
      [1, 0],
      [0, -1],
      [-1, 0],
      [0, 1],
      [1, -1],
      [-1, -1],
      [-1, 1],
      [1, 1],
    ].forEach(function (d) {
      NUDGES.push([d[0] * SIZE * ring, d[1] * SIZE * ring]);
    });
  });

  function layout(map, labels) {
    var placed = [];
    labels.forEach(function (item) {
      var at = map.latLngToLayerPoint(item.latlng);
      var offset = [0, 0];
      var free = function (o) {
        return placed.every(function (p) {
          return Math.abs(p.x - (at.x + o[0])) >= SIZE || Math.abs(p.y - (at.y + o[1])) >= SIZE;
        });
      };
      if (!free(offset)) {
        offset = NUDGES.find(free) || offset;
      }
      placed.push({ x: at.x + offset[0], y: at.y + offset[1] });
      item.marker.setIcon(labelIcon(item.text, item.current, offset[0], offset[1]));
      var moved = offset[0] !== 0 || offset[1] !== 0;
      if (moved) {
        var end = map.layerPointToLatLng([at.x + offset[0], at.y + offset[1]]);
        if (item.leader) {
          item.leader.setLatLngs([item.latlng, end]);
        } else {
          item.leader = L.polyline([item.latlng, end], {
            color: "#12304D",
            weight: 1.5,
            interactive: false,
            className: "trace-leader",
          }).addTo(map);
        }
      } else if (item.leader) {
        map.removeLayer(item.leader);
        item.leader = null;
      }
    });
  }

  function number(el, map) {
    if (el.dataset.traceNumbered === "true" || typeof L === "undefined") {
      return;
    }
    var overlay;
    try {
      overlay = JSON.parse(el.dataset.overlay || "{}");
    } catch (error) {
      return;
    }
    var labels = [];
    (overlay.features || []).forEach(function (feature) {
      var props = feature.properties || {};
      if (!feature.geometry || feature.geometry.type !== "Point" || !props.number) {
        return;
      }
      var coords = feature.geometry.coordinates;
      var latlng = L.latLng(coords[1], coords[0]);
      var marker = L.marker(latlng, {
        icon: labelIcon(props.number, props.current, 0, 0),
        interactive: false,
        keyboard: false,
        zIndexOffset: props.current ? 1000 : 0,
      }).addTo(map);
      labels.push({ latlng: latlng, marker: marker, text: String(props.number), current: !!props.current });
    });
    // The current custodian keeps its place; the others move aside when they would cover it or each other.
    labels.sort(function (a, b) {
      return (b.current ? 1 : 0) - (a.current ? 1 : 0);
    });
    layout(map, labels);
    map.on("zoomend", function () {
      layout(map, labels);
    });
    el.dataset.traceNumbered = "true";
  }

  document.addEventListener("circuflow:map-ready", function (event) {
    if (event.target.matches && event.target.matches("[data-map=custody]")) {
      number(event.target, event.detail.map);
    }
  });

  // The map may have drawn before this script ran.
  document.querySelectorAll("[data-map=custody][data-map-ready=true]").forEach(function (el) {
    var map = window.circuflowMaps && window.circuflowMaps.get(el);
    if (map) {
      number(el, map);
    }
  });
})();
