/* circuflow flow map: draws flows and enterprises on a map that map.js has drawn, and opens details beside it.
 *
 * The map element (data-map, drawn by map.js with its coloured boundaries and parks) also carries:
 *   data-flows        URL of the flows GeoJSON (lines between places; points for flows within a prefecture)
 *   data-enterprises  URL of the enterprises GeoJSON (points with role group, tonnes sent and received)
 *   data-details      CSS selector of the element that receives the details (an htmx GET, no page reload)
 *   data-details-query  the filter's query string, appended to every details URL
 *   data-labels       JSON of the few words used in tooltips (the server translates them)
 *   data-fit-layers   "true": zoom to the flows and enterprises rather than to the boundaries
 * When everything is drawn the element gets data-flows-ready="true".
 * Every number and word shown in the details panel is rendered by the server; this script only asks for it.
 */
(function () {
  "use strict";

  var NAVY = "#12304d";
  var SELECTED = "#c85200";
  var WITHIN_STYLE = { color: NAVY, weight: 2, opacity: 0.85, dashArray: "4 3", fillColor: "#ffffff", fillOpacity: 0.2 };
  // Role groups: colour-blind-safe colours, and filled versus hollow so that the two main groups differ by shape too.
  var GROUP_STYLES = {
    generator: { radius: 4.5, fillColor: "#595959", color: "#ffffff", weight: 1.2, fillOpacity: 1 },
    utiliser: { radius: 4, fillColor: "#ffffff", color: "#006ba4", weight: 2.5, fillOpacity: 1 },
    disposer: { radius: 4.5, fillColor: "#c85200", color: "#ffffff", weight: 1.2, fillOpacity: 1 },
    intermediary: { radius: 4.5, fillColor: "#a2c8ec", color: "#1f4e79", weight: 1.5, fillOpacity: 1 },
    battery: { radius: 4.5, fillColor: "#ffbc79", color: "#c85200", weight: 1.5, fillOpacity: 1 },
    other: { radius: 4, fillColor: "#ababab", color: "#595959", weight: 1, fillOpacity: 1 },
  };

  function fetchJson(url) {
    return fetch(url, { headers: { Accept: "application/geo+json, application/json" } }).then(function (response) {
      if (!response.ok) {
        throw new Error(url + ": HTTP " + response.status);
      }
      return response.json();
    });
  }

  function formatTonnes(value, lang) {
    return window.circuflowNumbers.tonnes(value, { lang: lang });
  }

  // Tooltips are HTML: names come from the database and are escaped.
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function nameOf(props, prefix, lang) {
    var en = props[prefix + "_en"];
    return escapeHtml(lang === "en" && en ? en : props[prefix + "_zh"] || "—");
  }

  function openDetails(el, path) {
    var target = document.querySelector(el.dataset.details || "#map-details");
    if (!target || !window.htmx) {
      return;
    }
    var query = el.dataset.detailsQuery || "";
    var url = path + (path.indexOf("?") >= 0 ? "&" : "?") + query;
    // The map is the source: a click on it leaves the focus where it was (a keyboard user comes from the lists).
    window.htmx.ajax("GET", url, { source: el, target: target, swap: "innerHTML" });
  }

  // Line width by the square root of tonnes (the area of a cross-section grows with the flow), 2.5 to 10 px.
  function widthScale(max) {
    return function (tonnes) {
      return max > 0 ? 2.5 + 7.5 * Math.sqrt(tonnes / max) : 2.5;
    };
  }

  // A park's or an enterprise's flows are a small part of the province: show them, not the whole boundary layer.
  function fitTo(map, layers) {
    var bounds = null;
    layers.forEach(function (layer) {
      var b = layer.getBounds();
      if (b.isValid()) {
        bounds = bounds ? bounds.extend(b) : L.latLngBounds(b.getSouthWest(), b.getNorthEast());
      }
    });
    if (!bounds) {
      return;
    }
    bounds = bounds.getNorthEast().equals(bounds.getSouthWest()) ? bounds.getCenter().toBounds(8000) : bounds.pad(0.15);
    map.fitBounds(bounds, { padding: [8, 8], animate: false, maxZoom: 12 });
  }

  function drawFlows(el, map, data, lang, labels) {
    var max = 0;
    data.features.forEach(function (f) {
      max = Math.max(max, f.properties.tonnes || 0);
    });
    var width = widthScale(max);
    var byKey = {};
    var layer = L.geoJSON(data, {
      style: function (feature) {
        if (feature.properties.kind === "within") {
          return WITHIN_STYLE;
        }
        return { color: NAVY, weight: width(feature.properties.tonnes), opacity: 0.72, lineCap: "round" };
      },
      pointToLayer: function (feature, latlng) {
        // Flows within one prefecture: a dashed ring whose size follows the same square-root scale.
        return L.circleMarker(latlng, Object.assign({ radius: 4 + 1.6 * width(feature.properties.tonnes) }, WITHIN_STYLE));
      },
      onEachFeature: function (feature, featureLayer) {
        var p = feature.properties;
        var key = p.from + ">" + p.to;
        byKey[key] = featureLayer;
        var route = p.kind === "within"
          ? labels.within.replace("{place}", nameOf(p, "from", lang))
          : nameOf(p, "from", lang) + " → " + nameOf(p, "to", lang);
        featureLayer.bindTooltip(
          route + "<br>" + formatTonnes(p.tonnes, lang) + " · " + labels.batches.replace("{n}", p.batches),
          { sticky: true }
        );
        featureLayer.on("click", function (event) {
          L.DomEvent.stopPropagation(event);
          openDetails(el, "/map/details/flow?level=" + encodeURIComponent(p.level) + "&from=" +
            encodeURIComponent(p.from) + "&to=" + encodeURIComponent(p.to));
        });
        featureLayer.on("add", function () {
          var path = featureLayer.getElement && featureLayer.getElement();
          if (path && p.kind === "flow") {
            // The arrowhead sits on the bend in the middle of the line and points the way the waste went.
            path.setAttribute("marker-mid", "url(#map-arrow)");
            path.classList.add("flow-line");
          }
          if (path) {
            path.setAttribute("data-flow", key);
          }
        });
      },
    });
    layer.addTo(map);
    return { layer: layer, byKey: byKey };
  }

  function drawEnterprises(el, map, data, lang, labels) {
    return L.geoJSON(data, {
      pointToLayer: function (feature, latlng) {
        var style = GROUP_STYLES[feature.properties.group] || GROUP_STYLES.other;
        return L.circleMarker(latlng, Object.assign({}, style));
      },
      onEachFeature: function (feature, featureLayer) {
        var p = feature.properties;
        var roles = (p.roles || []).map(function (r) { return escapeHtml(labels["role." + r] || r); }).join(", ");
        var text = nameOf(p, "name", lang) + (roles ? "<br>" + roles : "");
        if (p.sent_t || p.received_t) {
          text += "<br>" + labels.sent + " " + formatTonnes(p.sent_t, lang) +
            " · " + labels.received + " " + formatTonnes(p.received_t, lang);
          // What was received became: utilised here (allocated), or for an intermediary held and forwarded.
          if (p.held_t || p.forwarded_t) {
            text += "<br>" + labels.held + " " + formatTonnes(p.held_t, lang) +
              " · " + labels.forwarded + " " + formatTonnes(p.forwarded_t, lang);
          } else if (p.utilised_t) {
            text += "<br>" + labels.utilised + " " + formatTonnes(p.utilised_t, lang);
          }
        }
        featureLayer.bindTooltip(text, { direction: "top", offset: [0, -4] });
        featureLayer.on("click", function (event) {
          L.DomEvent.stopPropagation(event);
          openDetails(el, "/map/details/enterprise/" + encodeURIComponent(p.id));
        });
      },
    }).addTo(map);
  }

  function wirePlaces(el, layers) {
    if (layers.boundaries) {
      layers.boundaries.eachLayer(function (featureLayer) {
        var adcode = featureLayer.feature && featureLayer.feature.properties.adcode;
        featureLayer.on("click", function () {
          openDetails(el, "/map/details/region/" + encodeURIComponent(adcode));
        });
      });
    }
    if (layers.parks) {
      layers.parks.eachLayer(function (featureLayer) {
        var id = featureLayer.feature && featureLayer.feature.properties.id;
        featureLayer.on("click", function (event) {
          L.DomEvent.stopPropagation(event);
          openDetails(el, "/map/details/park/" + encodeURIComponent(id));
        });
      });
    }
  }

  function highlight(state, key) {
    Object.keys(state.byKey).forEach(function (k) {
      var featureLayer = state.byKey[k];
      var on = k === key;
      featureLayer.setStyle({ color: on ? SELECTED : NAVY, opacity: on ? 0.95 : featureLayer.options.dashArray ? 0.85 : 0.72 });
      var path = featureLayer.getElement && featureLayer.getElement();
      if (path && path.classList.contains("flow-line")) {
        path.setAttribute("marker-mid", on ? "url(#map-arrow-selected)" : "url(#map-arrow)");
      }
      if (on && featureLayer.bringToFront) {
        featureLayer.bringToFront();
      }
    });
  }

  var states = new WeakMap();

  function init(el) {
    if (states.has(el) || !el.dataset.flows) {
      return;
    }
    var state = { byKey: {} };
    states.set(el, state);
    var lang = el.dataset.lang || document.documentElement.lang || "zh-CN";
    var labels = JSON.parse(el.dataset.labels || "{}");
    // Asked for at once, in parallel with the boundaries that map.js is fetching.
    var layersData = Promise.all([fetchJson(el.dataset.flows), fetchJson(el.dataset.enterprises)]);
    function draw(map, layers) {
      layersData
        .then(function (results) {
          wirePlaces(el, layers || {});
          var flows = drawFlows(el, map, results[0], lang, labels);
          state.byKey = flows.byKey;
          var points = drawEnterprises(el, map, results[1], lang, labels);
          if (el.dataset.fitLayers === "true") {
            fitTo(map, [flows.layer, points]);
          }
          el.dataset.flowsReady = "true";
        })
        .catch(function (error) {
          el.dataset.flowsReady = "error";
          if (window.console) {
            window.console.error("circuflow flow map:", error);
          }
        });
    }
    if (el.dataset.mapReady === "true" && window.circuflowMaps) {
      draw(window.circuflowMaps.get(el), window.circuflowMaps.layers(el));
    } else {
      el.addEventListener("circuflow:map-ready", function (event) {
        draw(event.detail.map, event.detail.layers);
      }, { once: true });
    }
  }

  function initAll(root) {
    var scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("[data-map][data-flows]")) {
      init(scope);
    }
    scope.querySelectorAll("[data-map][data-flows]").forEach(init);
  }

  // Details arrived: highlight the flow they describe, and bring keyboard users to them.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || target.id !== "map-details") {
      return;
    }
    var body = target.querySelector("[data-select]");
    var select = body ? body.getAttribute("data-select") : "";
    document.querySelectorAll("[data-map][data-flows]").forEach(function (el) {
      var state = states.get(el);
      if (state) {
        highlight(state, select.indexOf("flow:") === 0 ? select.slice(5) : "");
      }
    });
    var trigger = event.detail.requestConfig && event.detail.requestConfig.elt;
    var heading = target.querySelector("h2[tabindex]");
    if (heading && trigger && trigger.closest && !trigger.closest("[data-map]")) {
      heading.focus({ preventScroll: false });
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      initAll(document);
    });
  } else {
    initAll(document);
  }
  document.addEventListener("htmx:load", function (event) {
    initAll(event.target);
  });
})();
