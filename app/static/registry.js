// The map picker of the enterprise edit page and the boundary view of the park edit page.
// The map is WGS84 (the boundaries are stored so): a point picked on it is WGS84, whatever datum was chosen before.
(function () {
  "use strict";

  // Tests (and page scripts) reach a drawn map through window.circuflowPickers.get(el) once data-map-ready is set.
  var pickers = (window.circuflowPickers = new Map());

  function baseMap(el) {
    var map = L.map(el, { zoomSnap: 0.25, scrollWheelZoom: false });
    map.attributionControl.setPrefix(false);
    pickers.set(el, map);
    if (el.dataset.attribution) {
      map.attributionControl.addAttribution(el.dataset.attribution);
    }
    if (el.dataset.tileUrl) {
      L.tileLayer(el.dataset.tileUrl, { maxZoom: 18 }).addTo(map);
    }
    return map;
  }

  function overlay(map, url, style) {
    if (!url) {
      return;
    }
    fetch(url, { headers: { Accept: "application/geo+json, application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data) {
          L.geoJSON(data, { style: style, interactive: false }).addTo(map).bringToBack();
        }
      });
  }

  function picker(el) {
    var lon = document.getElementById("ef-lon");
    var lat = document.getElementById("ef-lat");
    var datum = document.getElementById("ef-datum");
    var start = L.latLng(parseFloat(lat.value) || 30.6, parseFloat(lon.value) || 104.07);
    var map = baseMap(el);
    map.setView(start, 11);
    overlay(map, el.dataset.boundaries, { color: "#595959", weight: 1, fill: false });
    overlay(map, el.dataset.parks, { color: "#006BA4", weight: 1.5, fillOpacity: 0.12, dashArray: "4 3" });
    var marker = L.marker(start, { draggable: true, keyboard: true, title: el.getAttribute("aria-label") }).addTo(map);

    function pick(point) {
      marker.setLatLng(point);
      lon.value = point.lng.toFixed(6);
      lat.value = point.lat.toFixed(6);
      datum.value = "wgs84";
    }

    map.on("click", function (event) {
      pick(event.latlng);
    });
    marker.on("dragend", function () {
      pick(marker.getLatLng());
    });
    el.dataset.mapReady = "true";
    // Typed WGS84 coordinates move the marker; others are converted by the server when saved.
    [lon, lat].forEach(function (input) {
      input.addEventListener("change", function () {
        var point = L.latLng(parseFloat(lat.value), parseFloat(lon.value));
        if (datum.value === "wgs84" && isFinite(point.lat) && isFinite(point.lng)) {
          marker.setLatLng(point);
          map.panTo(point);
        }
      });
    });
  }

  function parkView(el) {
    var map = baseMap(el);
    var shape = L.geoJSON(JSON.parse(el.dataset.boundary), {
      style: { color: "#006BA4", weight: 2, fillOpacity: 0.15 },
      interactive: false,
    }).addTo(map);
    map.fitBounds(shape.getBounds(), { padding: [20, 20] });
    el.dataset.mapReady = "true";
  }

  function start() {
    if (!window.L) {
      return;
    }
    var picking = document.getElementById("picker-map");
    if (picking) {
      picker(picking);
    }
    var park = document.getElementById("park-map");
    if (park) {
      parkView(park);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
