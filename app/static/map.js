/* circuflow maps: Leaflet maps whose base layer is the region boundaries themselves, so they work offline.
 *
 * A map is any element with data-map; its data-* attributes say what to draw:
 *   data-boundaries  URL of a GeoJSON FeatureCollection of regions (properties name_zh, name_en, adcode)
 *   data-parks       optional URL of park polygons, drawn above the boundaries
 *   data-tile-url    optional tile URL template; without it no tiles are requested at all
 *   data-lang        "zh-CN" or "en", for the names in tooltips
 *   data-overlay     optional inline GeoJSON drawn on top (points, lines, polygons). Each feature's properties may
 *                    carry `style` (Leaflet path options; points are circle markers, `radius` in style) and `label`
 *                    (tooltip text). With data-fit="overlay" the map zooms to the overlay instead of the province.
 * Boundary and park features may carry properties.style (Leaflet path options merged over the defaults, e.g. a
 * region coloured by its rate) and properties.label (tooltip text instead of the name).
 * Page scripts reach a map through window.circuflowMaps.get(el) once data-map-ready is set, its layers through
 * window.circuflowMaps.layers(el) ({boundaries, parks, overlay}), and may listen for the "circuflow:map-ready"
 * event that the element dispatches (detail: {map: the Leaflet map, layers: the same layers}).
 * When the map has drawn, the element gets data-map-ready="true" (the browser tests wait for it).
 */
(function () {
  "use strict";

  // Colour-blind-safe (Tableau 10 colour-blind palette), the same values as in app.css.
  var COLOURS = {
    boundary: "#1f4e79",
    fill: "#5f9ed1",
    fillHover: "#a2c8ec",
    park: "#c85200",
    parkFill: "#ff800e",
  };

  var maps = new WeakMap();
  var layersOf = new WeakMap();

  // Tooltip strings are HTML to Leaflet: names and labels come from the database and are escaped.
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function nameOf(props, lang) {
    if (lang === "en" && props.name_en) {
      return props.name_en;
    }
    return props.name_zh || props.adcode || "";
  }

  function setStatus(el, text) {
    var status = el.querySelector(".map__status");
    if (!status) {
      status = document.createElement("p");
      status.className = "map__status";
      el.appendChild(status);
    }
    status.textContent = text;
    status.hidden = !text;
  }

  function fetchJson(url) {
    return fetch(url, { headers: { Accept: "application/geo+json, application/json" } }).then(function (response) {
      if (!response.ok) {
        throw new Error(url + ": HTTP " + response.status);
      }
      return response.json();
    });
  }

  function boundaryLayer(data, lang) {
    var layer = L.geoJSON(data, {
      style: function (feature) {
        var own = (feature && feature.properties && feature.properties.style) || {};
        return Object.assign({ color: COLOURS.boundary, weight: 1.2, fillColor: COLOURS.fill, fillOpacity: 0.35 }, own);
      },
      onEachFeature: function (feature, featureLayer) {
        var props = feature.properties || {};
        featureLayer.bindTooltip(escapeHtml(props.label || nameOf(props, lang) + " · " + (props.adcode || "")), {
          sticky: true,
        });
        featureLayer.on({
          mouseover: function () {
            // A region coloured by its own style (a rate class) keeps its fill: only the outline stands out.
            featureLayer.setStyle(
              props.style ? { weight: 3 } : { fillColor: COLOURS.fillHover, fillOpacity: 0.6, weight: 2 }
            );
          },
          mouseout: function () {
            layer.resetStyle(featureLayer);
          },
        });
      },
    });
    return layer;
  }

  function parkLayer(data, lang) {
    return L.geoJSON(data, {
      style: function (feature) {
        var own = (feature && feature.properties && feature.properties.style) || {};
        return Object.assign({ color: COLOURS.park, weight: 1.5, fillColor: COLOURS.parkFill, fillOpacity: 0.55 }, own);
      },
      onEachFeature: function (feature, featureLayer) {
        var props = feature.properties || {};
        featureLayer.bindTooltip(escapeHtml(props.label || nameOf(props, lang)), { sticky: true });
      },
    });
  }

  // The container changes size with the layout (phone rotation, sidebar, window resize): keep the whole province in
  // view until the user zooms or pans, after which the view is theirs.
  function keepFitted(el, map, bounds) {
    var userMoved = false;
    var fitting = false;
    map.on("zoomstart movestart", function () {
      if (!fitting) {
        userMoved = true;
      }
    });
    if (typeof ResizeObserver === "undefined") {
      return;
    }
    new ResizeObserver(function () {
      map.invalidateSize();
      if (!userMoved) {
        fitting = true;
        map.fitBounds(bounds, { padding: [8, 8], animate: false });
        fitting = false;
      }
    }).observe(el);
  }

  function overlayLayer(data) {
    return L.geoJSON(data, {
      style: function (feature) {
        return (feature.properties && feature.properties.style) || { color: COLOURS.park, weight: 3 };
      },
      pointToLayer: function (feature, latlng) {
        var style = (feature.properties && feature.properties.style) || {};
        return L.circleMarker(latlng, Object.assign({ radius: 6, weight: 1.5, fillOpacity: 0.9 }, style));
      },
      onEachFeature: function (feature, featureLayer) {
        var label = feature.properties && feature.properties.label;
        if (label) {
          featureLayer.bindTooltip(escapeHtml(label), { sticky: true });
        }
      },
    });
  }

  function initMap(el) {
    if (maps.has(el) || typeof L === "undefined") {
      return;
    }
    var lang = el.dataset.lang || document.documentElement.lang || "zh-CN";
    var map = L.map(el, {
      zoomSnap: 0.25,
      // A small overview map inside a scrolling page must not capture the wheel; +/- and the keyboard still zoom.
      scrollWheelZoom: false,
      attributionControl: true,
    });
    maps.set(el, map);
    map.attributionControl.setPrefix(false);
    if (el.dataset.attribution) {
      map.attributionControl.addAttribution(el.dataset.attribution);
    }
    // Until the boundaries arrive, show roughly Sichuan so that the empty map is not a grey world.
    map.setView([30.6, 102.7], 5.5);
    if (el.dataset.tileUrl) {
      L.tileLayer(el.dataset.tileUrl, { maxZoom: 18 }).addTo(map);
    }

    var requests = [fetchJson(el.dataset.boundaries)];
    if (el.dataset.parks) {
      requests.push(fetchJson(el.dataset.parks));
    }
    Promise.all(requests)
      .then(function (results) {
        var layers = { boundaries: boundaryLayer(results[0], lang).addTo(map), parks: null, overlay: null };
        var boundaries = layers.boundaries;
        if (results[1]) {
          layers.parks = parkLayer(results[1], lang).addTo(map);
        }
        layersOf.set(el, layers);
        var bounds = boundaries.getBounds();
        if (el.dataset.overlay) {
          var overlay = overlayLayer(JSON.parse(el.dataset.overlay)).addTo(map);
          layers.overlay = overlay;
          if (el.dataset.fit === "overlay" && overlay.getBounds().isValid()) {
            // A single point has no extent: pad it to a few kilometres around.
            bounds = overlay.getBounds().pad(0.3);
            if (bounds.getNorthEast().equals(bounds.getSouthWest())) {
              bounds = bounds.getCenter().toBounds(8000);
            }
          }
        }
        if (bounds.isValid()) {
          // Not animated: an animated zoom starts a frame later and would look like the user's own move.
          map.fitBounds(bounds, { padding: [8, 8], animate: false });
          keepFitted(el, map, bounds);
        }
        setStatus(el, "");
        el.dataset.mapReady = "true";
        el.dispatchEvent(new CustomEvent("circuflow:map-ready", { bubbles: true, detail: { map: map, layers: layers } }));
      })
      .catch(function (error) {
        setStatus(el, el.dataset.error || String(error));
        el.dataset.mapReady = "error";
        if (window.console) {
          window.console.error("circuflow map:", error);
        }
      });
  }

  function initAll(root) {
    var scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("[data-map]")) {
      initMap(scope);
    }
    scope.querySelectorAll("[data-map]").forEach(initMap);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      initAll(document);
    });
  } else {
    initAll(document);
  }
  window.circuflowMaps = {
    get: function (el) {
      return maps.get(el);
    },
    layers: function (el) {
      return layersOf.get(el);
    },
  };
  // Content swapped in by htmx may bring new maps with it.
  document.addEventListener("htmx:load", function (event) {
    initAll(event.target);
  });
})();
