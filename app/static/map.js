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
 *   data-fit-bounds  optional [[south, west], [north, east]] to open on (a park) instead of the boundaries
 *   data-view        optional "lat,lon,zoom" to open on (a link to a view); the view is then the user's
 *   data-place-labels  "true": each boundary's name (properties.name, else name_zh / name_en) is written at
 *                    properties.label_point; names that would overlap a larger region's are hidden at that zoom
 * Boundary and park features may carry properties.style (Leaflet path options merged over the defaults, e.g. a
 * region coloured by its rate) and properties.label (tooltip text instead of the name).
 * Page scripts reach a map through window.circuflowMaps.get(el) once data-map-ready is set, its layers through
 * window.circuflowMaps.layers(el) ({boundaries, parks, overlay}), and may listen for the "circuflow:map-ready"
 * event that the element dispatches (detail: {map: the Leaflet map, layers: the same layers}).
 * window.circuflowMaps.labels(el) lists the place names drawn ({text, latlng, element}); .refit(el) returns to the
 * first view; .onUserMove(el, fn) calls fn after each move the user made (not the fitting to the container).
 * When the map has drawn, the element gets data-map-ready="true" (the browser tests wait for it).
 */
(function () {
  "use strict";

  // Colour-blind-safe (Tableau 10 colour-blind palette), the same values as in app.css.
  var COLOURS = {
    boundary: "#1f4e79",
    fill: "#5f9ed1",
    fillHover: "#a2c8ec",
    park: "#332288",
    parkFill: "#88ccee",
  };

  var maps = new WeakMap();
  var layersOf = new WeakMap();
  var views = new WeakMap();
  var labelsOf = new WeakMap();

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
        return Object.assign({ color: COLOURS.park, weight: 1.5, fillColor: COLOURS.parkFill, fillOpacity: 0.45 }, own);
      },
      onEachFeature: function (feature, featureLayer) {
        var props = feature.properties || {};
        featureLayer.bindTooltip(escapeHtml(props.label || nameOf(props, lang)), { sticky: true });
      },
    });
  }

  // The container changes size with the layout (phone rotation, sidebar, window resize): keep the first view (the
  // province, a park) fitted until the user zooms or pans, after which the view is theirs.
  function keepFitted(el, map, bounds, opened) {
    var view = { bounds: bounds, userMoved: Boolean(opened), fitting: false, moving: false, listeners: [] };
    views.set(el, view);
    view.fit = function () {
      view.fitting = true;
      map.fitBounds(view.bounds, { padding: [8, 8], animate: false, maxZoom: view.maxZoom });
      view.fitting = false;
    };
    map.on("zoomstart movestart", function () {
      if (!view.fitting) {
        view.userMoved = true;
        view.moving = true;
      }
    });
    map.on("moveend", function () {
      if (view.moving) {
        view.moving = false;
        view.listeners.forEach(function (fn) {
          fn(map);
        });
      }
    });
    if (opened) {
      view.fitting = true;
      map.setView(opened.center, opened.zoom, { animate: false });
      view.fitting = false;
    } else {
      view.fit();
    }
    if (typeof ResizeObserver === "undefined") {
      return;
    }
    new ResizeObserver(function () {
      // A new size moves the map's centre: the layout's doing, not the user's.
      view.fitting = true;
      map.invalidateSize();
      view.fitting = false;
      if (!view.userMoved) {
        view.fit();
      }
    }).observe(el);
  }

  function openedView(el) {
    var parts = (el.dataset.view || "").split(",").map(Number);
    if (parts.length !== 3 || parts.some(isNaN)) {
      return null;
    }
    return { center: [parts[0], parts[1]], zoom: parts[2] };
  }

  // Names at their label points, larger regions first; a name that would overlap one already shown waits for a
  // closer zoom. The names stay in the page (hidden, not removed) so that the export and the tests find them all.
  function placeLabels(el, map, boundaries, lang) {
    var labels = [];
    boundaries.eachLayer(function (featureLayer) {
      var props = featureLayer.feature.properties || {};
      if (!props.label_point) {
        return;
      }
      var text = props.name || nameOf(props, lang);
      var b = featureLayer.getBounds();
      var latlng = L.latLng(props.label_point[1], props.label_point[0]);
      var marker = L.marker(latlng, {
        icon: L.divIcon({ className: "map-label", html: "<span>" + escapeHtml(text) + "</span>", iconSize: null }),
        interactive: false,
        keyboard: false,
      }).addTo(map);
      var area = (b.getNorth() - b.getSouth()) * (b.getEast() - b.getWest());
      labels.push({ text: text, latlng: latlng, marker: marker, area: area, adcode: props.adcode });
    });
    labels.sort(function (a, b) {
      return b.area - a.area;
    });
    function declutter() {
      var shown = [];
      labels.forEach(function (label) {
        var element = label.marker.getElement();
        if (!element) {
          return;
        }
        element.classList.remove("map-label--hidden");
        var box = element.firstChild.getBoundingClientRect();
        var clash = shown.some(function (other) {
          return box.left < other.right + 2 && box.right > other.left - 2 && box.top < other.bottom && box.bottom > other.top;
        });
        element.classList.toggle("map-label--hidden", clash);
        label.element = element;
        label.visible = !clash;
        if (!clash) {
          shown.push(box);
        }
      });
    }
    map.on("zoomend moveend resize", declutter);
    labelsOf.set(el, labels);
    return declutter;
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
      // Street level at most: beyond it a boundary map shows nothing more, and a view's address names zoom 0 to 18.
      maxZoom: 18,
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
        var declutter = el.dataset.placeLabels === "true" ? placeLabels(el, map, boundaries, lang) : null;
        if (el.dataset.fitBounds) {
          bounds = L.latLngBounds(JSON.parse(el.dataset.fitBounds)).pad(0.1);
        }
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
          keepFitted(el, map, bounds, openedView(el));
        }
        if (declutter) {
          declutter();
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
    labels: function (el) {
      return labelsOf.get(el) || [];
    },
    // Fitted to other bounds (the flows of a park or an enterprise): kept fitted to them as the container resizes.
    fitTo: function (el, bounds, maxZoom) {
      var view = views.get(el);
      if (view) {
        view.bounds = bounds;
        view.maxZoom = maxZoom;
        view.userMoved = false;
        view.fit();
      }
    },
    refit: function (el) {
      var view = views.get(el);
      if (view) {
        view.userMoved = false;
        view.fit();
      }
    },
    onUserMove: function (el, fn) {
      var view = views.get(el);
      if (view) {
        view.listeners.push(fn);
      }
    },
    // A view asked for (a link, the back button): set, and the user's from then on.
    setView: function (el, center, zoom) {
      var view = views.get(el);
      var map = maps.get(el);
      if (view && map) {
        view.fitting = true;
        view.userMoved = true;
        map.setView(center, zoom, { animate: false });
        view.fitting = false;
      }
    },
  };
  // Content swapped in by htmx may bring new maps with it.
  document.addEventListener("htmx:load", function (event) {
    initAll(event.target);
  });
})();
