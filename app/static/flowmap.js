/* circuflow flow map: draws flows and enterprises on a map that map.js has drawn, and opens details beside it.
 *
 * The map element (data-map, drawn by map.js with its coloured boundaries and parks) also carries:
 *   data-flows        URL of the flows GeoJSON (lines between places; points for flows within a prefecture)
 *   data-enterprises  URL of the enterprises GeoJSON (points with role group, tonnes sent and received)
 *   data-details      CSS selector of the element that receives the details (an htmx GET, no page reload)
 *   data-details-query  the filter's query string, appended to every details URL
 *   data-labels       JSON of the few words used in tooltips (the server translates them)
 *   data-fit-layers   "true": zoom to the flows and enterprises rather than to the boundaries
 *   data-palette      JSON of the map's colours (PALETTE in app/web_map.py)
 *   data-flow-max-tonnes, data-flow-max-px  the one scale of lines (width) and internal flows' circles (radius)
 *   data-level        the level of the flows drawn (prefecture or enterprise), for the selection in the address
 *   data-selection    what to open beside the map at first (from the address: region:, park:, enterprise:, flow:)
 *   data-year         the year shown, written into the address when it came from the reader's last visit
 * A range input #map-top draws the largest N flows only; #map-export downloads the view as a PNG; the address
 * follows the view (top, sel, at = lat,lon,zoom) and the back and forward buttons walk it.
 * When everything is drawn the element gets data-flows-ready="true".
 * Every number and word shown in the details panel is rendered by the server; this script only asks for it.
 */
(function () {
  "use strict";

  // htmx runs the page's scripts again when it restores a page from history: one copy of the listeners is enough
  // (the first copy's htmx:load listener draws the restored map).
  if (window.circuflowFlowMap) {
    return;
  }
  window.circuflowFlowMap = true;

  var LINE_OPACITY = 0.72;
  var CIRCLE_OPACITY = 0.9;

  // Role groups: the palette's colours, and filled versus hollow so that the two main groups differ by shape too.
  function groupStyles(c) {
    return {
      generator: { radius: 4.5, fillColor: c.generator, color: "#ffffff", weight: 1.2, fillOpacity: 1 },
      utiliser: { radius: 4, fillColor: "#ffffff", color: c.utiliser, weight: 2.5, fillOpacity: 1 },
      disposer: { radius: 4.5, fillColor: c.disposer, color: "#ffffff", weight: 1.2, fillOpacity: 1 },
      intermediary: { radius: 4.5, fillColor: c.intermediary, color: "#1f4e79", weight: 1.5, fillOpacity: 1 },
      battery: { radius: 5, fillColor: c.battery, color: c.battery_ring, weight: 1.5, fillOpacity: 1 },
      other: { radius: 4, fillColor: "#ababab", color: "#595959", weight: 1, fillOpacity: 1 },
    };
  }

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

  // One scale for both symbols, as the legend draws it (FlowScale in flows/pages/map.py): a line's width and an
  // internal flow's circle radius are the same pixels for the same tonnes, by the square root of tonnes.
  function sizeScale(maxTonnes, maxPx) {
    return function (tonnes) {
      return maxTonnes > 0 ? Math.max(1.5, maxPx * Math.sqrt(Math.max(0, tonnes) / maxTonnes)) : 1.5;
    };
  }

  // A park's or an enterprise's flows are a small part of the province: show them, not the whole boundary layer.
  function fitTo(el, layers) {
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
    window.circuflowMaps.fitTo(el, bounds, 12);
  }

  function restStyle(state, featureLayer) {
    var c = state.colours;
    if (featureLayer.feature.properties.kind === "within") {
      return { color: c.flow, weight: 2, opacity: CIRCLE_OPACITY, fillColor: c.flow, fillOpacity: 0.25 };
    }
    return { color: c.flow, weight: featureLayer.flowSize, opacity: LINE_OPACITY };
  }

  function drawFlows(el, map, data, lang, labels, state) {
    var size = sizeScale(Number(el.dataset.flowMaxTonnes) || 0, Number(el.dataset.flowMaxPx) || 16);
    var byKey = {};
    var ordered = [];
    var layer = L.geoJSON(data, {
      style: function (feature) {
        var c = state.colours;
        if (feature.properties.kind === "within") {
          return { color: c.flow, weight: 2, opacity: CIRCLE_OPACITY, fillColor: c.flow, fillOpacity: 0.25 };
        }
        return { color: c.flow, weight: size(feature.properties.tonnes), opacity: LINE_OPACITY, lineCap: "round" };
      },
      pointToLayer: function (feature, latlng) {
        // A place's flows within itself: a solid circle whose radius is a line's width for the same tonnes.
        return L.circleMarker(latlng, { radius: size(feature.properties.tonnes) });
      },
      onEachFeature: function (feature, featureLayer) {
        var p = feature.properties;
        var key = p.from + ">" + p.to;
        byKey[key] = featureLayer;
        featureLayer.flowSize = size(p.tonnes);
        ordered.push(featureLayer);
        var route = p.kind === "within"
          ? labels.within.replace("{place}", nameOf(p, "from", lang))
          : nameOf(p, "from", lang) + " → " + nameOf(p, "to", lang);
        featureLayer.bindTooltip(
          route + "<br>" + formatTonnes(p.tonnes, lang) + " · " + labels.batches.replace("{n}", p.batches),
          { sticky: true }
        );
        featureLayer.on("click", function (event) {
          L.DomEvent.stopPropagation(event);
          openDetails(el, flowPath(p.level, p.from, p.to));
        });
        featureLayer.on("mouseover", function () {
          if (state.selected !== key) {
            featureLayer.setStyle({ color: state.colours.hover, opacity: 1 });
            setArrow(featureLayer, "url(#map-arrow-hover)");
          }
        });
        featureLayer.on("mouseout", function () {
          if (state.selected !== key) {
            featureLayer.setStyle(restStyle(state, featureLayer));
            setArrow(featureLayer, "url(#map-arrow)");
          }
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
    return { layer: layer, byKey: byKey, ordered: ordered };
  }

  function flowPath(level, from, to) {
    return "/map/details/flow?level=" + encodeURIComponent(level) + "&from=" + encodeURIComponent(from) + "&to=" +
      encodeURIComponent(to);
  }

  function setArrow(featureLayer, marker) {
    var path = featureLayer.getElement && featureLayer.getElement();
    if (path && path.classList.contains("flow-line")) {
      path.setAttribute("marker-mid", marker);
    }
  }

  function drawEnterprises(el, map, data, lang, labels, colours) {
    var styles = groupStyles(colours);
    return L.geoJSON(data, {
      pointToLayer: function (feature, latlng) {
        var style = styles[feature.properties.group] || styles.other;
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

  // The selected flow: black on a white casing drawn beneath it, above everything else.
  function highlight(state, key) {
    if (state.casing) {
      state.casing.remove();
      state.casing = null;
    }
    state.selected = key && state.byKey[key] ? key : "";
    Object.keys(state.byKey).forEach(function (k) {
      var featureLayer = state.byKey[k];
      var on = k === state.selected;
      featureLayer.setStyle(on ? { color: state.colours.selected, opacity: 1 } : restStyle(state, featureLayer));
      setArrow(featureLayer, on ? "url(#map-arrow-selected)" : "url(#map-arrow)");
    });
    var chosen = state.selected ? state.byKey[state.selected] : null;
    if (!chosen || !state.map || !state.map.hasLayer(chosen)) {
      return;
    }
    var casing = { color: state.colours.casing, opacity: 1, interactive: false };
    if (chosen.feature.properties.kind === "within") {
      state.casing = L.circleMarker(chosen.getLatLng(), Object.assign(casing, { radius: chosen.getRadius(), weight: 6, fill: false }));
    } else {
      state.casing = L.polyline(chosen.getLatLngs(), Object.assign(casing, { weight: chosen.flowSize + 5, lineCap: "round" }));
    }
    state.casing.addTo(state.map);
    chosen.bringToFront();
  }

  // ---- The largest N flows ---------------------------------------------------------------------------------

  function truncatedPercent(fraction) {
    // As the server prints rates: truncated, never rounded up, to 0.1 pt.
    return (Math.floor(fraction * 1000 + 1e-9) / 10).toFixed(1) + "%";
  }

  function showTop(state, n) {
    var count = state.ordered.length;
    n = Math.max(1, Math.min(count, n || count));
    var tonnes = 0;
    state.ordered.forEach(function (featureLayer, i) {
      var on = i < n;
      if (on) {
        tonnes += featureLayer.feature.properties.tonnes || 0;
        if (!state.flows.hasLayer(featureLayer)) {
          state.flows.addLayer(featureLayer);
        }
      } else if (state.flows.hasLayer(featureLayer)) {
        state.flows.removeLayer(featureLayer);
      }
    });
    state.top = n;
    var slider = document.getElementById("map-top");
    if (slider) {
      // Sent with the filters only when it leaves flows out: all of one year's flows stay all of the next one's.
      slider.name = n < count ? "top" : "";
    }
    var status = document.getElementById("map-top-status");
    if (status && count) {
      var total = state.totalTonnes;
      status.textContent = state.labels[n < count ? "top.status" : "top.all"]
        .replace("{n}", n.toLocaleString(state.lang))
        .replace("{count}", count.toLocaleString(state.lang))
        .replace("{tonnes}", formatTonnes(tonnes, state.lang))
        .replace("{share}", total > 0 ? truncatedPercent(tonnes / total) : "–");
      status.dataset.shown = String(n);
    }
    highlight(state, state.selected);
    state.el.dataset.flowsShown = String(n);
  }

  // ---- The view in the address -----------------------------------------------------------------------------

  function selectionOf(body, level) {
    var select = body ? body.getAttribute("data-select") || "" : "";
    if (select.indexOf("flow:") === 0) {
      return "flow:" + (body.getAttribute("data-level") || level) + ":" + select.slice(5).replace(">", ":");
    }
    return select;
  }

  function detailsPath(selection) {
    var flow = /^flow:(prefecture|enterprise):(\d*):(\d*)$/.exec(selection);
    if (flow) {
      return flowPath(flow[1], flow[2], flow[3]);
    }
    var place = /^(region|park|enterprise):(\d+)$/.exec(selection);
    return place ? "/map/details/" + place[1] + "/" + place[2] : null;
  }

  function viewText(map) {
    var c = map.getCenter();
    return c.lat.toFixed(5) + "," + c.lng.toFixed(5) + "," + Math.round(map.getZoom() * 100) / 100;
  }

  // Writes the view into the address: a new history entry for what the reader chose (a selection, the number of
  // flows), the same entry for moving the map (else the back button would replay every pan).
  function writeAddress(state, changes, push) {
    var params = new URLSearchParams(window.location.search);
    Object.keys(changes).forEach(function (name) {
      if (changes[name] === null || changes[name] === "") {
        params.delete(name);
      } else {
        params.set(name, changes[name]);
      }
    });
    // Colons and commas left as they are, so that a link reads: sel=flow:prefecture:510400:510100&at=30.6,102.7,7
    var pairs = [];
    params.forEach(function (value, name) {
      pairs.push(encodeURIComponent(name) + "=" + encodeURIComponent(value).replace(/%3A/gi, ":").replace(/%2C/gi, ","));
    });
    var address = window.location.pathname + (pairs.length ? "?" + pairs.join("&") : "");
    if (address === window.location.pathname + window.location.search) {
      return;
    }
    if (push) {
      window.history.pushState({ circuflowMap: true }, "", address);
    } else {
      window.history.replaceState(window.history.state, "", address);
    }
    var link = document.getElementById("map-link");
    if (link) {
      link.href = address;
    }
  }

  function clearDetails(state) {
    var target = document.querySelector(state.el.dataset.details || "#map-details");
    if (target && state.emptyDetails !== null) {
      target.innerHTML = state.emptyDetails;
    }
    highlight(state, "");
  }

  // The address changed under the map (back, forward): show what it says.
  function applyAddress(state) {
    var params = new URLSearchParams(window.location.search);
    var slider = document.getElementById("map-top");
    var top = Number(params.get("top")) || state.ordered.length;
    if (slider) {
      slider.value = String(top);
    }
    showTop(state, top);
    var view = (params.get("at") || "").split(",").map(Number);
    if (view.length === 3 && !view.some(isNaN)) {
      window.circuflowMaps.setView(state.el, [view[0], view[1]], view[2]);
    } else {
      window.circuflowMaps.refit(state.el);
    }
    var selection = params.get("sel") || "";
    if (selection !== state.selection) {
      state.selection = selection;
      var path = detailsPath(selection);
      if (path) {
        state.restoring = true;
        openDetails(state.el, path);
      } else {
        clearDetails(state);
      }
    }
  }

  // ---- The view as a picture -------------------------------------------------------------------------------

  // The map's SVG (regions, parks, flows, enterprises) with the patterns and arrowheads it refers to, the place
  // names and the heading drawn on a canvas: a PNG of what the reader sees, made in the browser.
  function exportPng(state, button) {
    var el = state.el;
    var map = state.map;
    var svg = el.querySelector(".leaflet-overlay-pane svg");
    if (!svg) {
      return;
    }
    var size = map.getSize();
    var ratio = 2;
    var band = 30;
    var canvas = document.createElement("canvas");
    canvas.width = size.x * ratio;
    canvas.height = (size.y + band) * ratio;
    var ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, size.x, band);
    ctx.fillStyle = window.getComputedStyle(el).backgroundColor || "#ffffff";
    ctx.fillRect(0, band, size.x, size.y);

    var clone = svg.cloneNode(true);
    clone.setAttribute("xmlns", "http://www.w3.org/2000/svg");
    var defs = document.querySelector("svg.map-defs defs");
    if (defs) {
      clone.insertBefore(defs.cloneNode(true), clone.firstChild);
    }
    var box = el.getBoundingClientRect();
    var at = svg.getBoundingClientRect();
    var image = new Image();
    image.onload = function () {
      // Leaflet's SVG reaches past the visible map (it is drawn ahead for panning): only the view goes in.
      ctx.save();
      ctx.beginPath();
      ctx.rect(0, band, size.x, size.y);
      ctx.clip();
      ctx.drawImage(image, at.left - box.left, at.top - box.top + band, at.width, at.height);
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = "600 12px sans-serif";
      ctx.lineJoin = "round";
      window.circuflowMaps.labels(el).forEach(function (label) {
        if (!label.visible) {
          return;
        }
        var p = map.latLngToContainerPoint(label.latlng);
        ctx.strokeStyle = "#ffffff";
        ctx.lineWidth = 3;
        ctx.strokeText(label.text, p.x, p.y + band);
        ctx.fillStyle = state.colours.label;
        ctx.fillText(label.text, p.x, p.y + band);
      });
      ctx.restore();
      var heading = document.getElementById("flow-map-heading");
      var status = document.getElementById("map-top-status");
      ctx.textAlign = "left";
      ctx.fillStyle = "#1a1a1a";
      ctx.font = "600 14px sans-serif";
      ctx.fillText((heading ? heading.textContent.trim() : "") + (status ? " · " + status.textContent.trim() : ""), 8, band / 2);
      canvas.toBlob(function (blob) {
        var link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = button.dataset.filename || "circuflow-map.png";
        document.body.appendChild(link);
        link.click();
        link.remove();
        window.setTimeout(function () {
          URL.revokeObjectURL(link.href);
        }, 1000);
      }, "image/png");
    };
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(new XMLSerializer().serializeToString(clone));
  }

  var states = new WeakMap();

  function init(el) {
    if (states.has(el) || !el.dataset.flows) {
      return;
    }
    var lang = el.dataset.lang || document.documentElement.lang || "zh-CN";
    var labels = JSON.parse(el.dataset.labels || "{}");
    var details = document.querySelector(el.dataset.details || "#map-details");
    var state = {
      el: el,
      byKey: {},
      ordered: [],
      lang: lang,
      labels: labels,
      colours: JSON.parse(el.dataset.palette || "{}"),
      selected: "",
      selection: el.dataset.selection || "",
      restoring: false,
      emptyDetails: details ? details.innerHTML : null,
    };
    states.set(el, state);
    // Asked for at once, in parallel with the boundaries that map.js is fetching.
    var layersData = Promise.all([fetchJson(el.dataset.flows), fetchJson(el.dataset.enterprises)]);
    function draw(map, layers) {
      layersData
        .then(function (results) {
          wirePlaces(el, layers || {});
          state.map = map;
          state.totalTonnes = results[0].tonnes || 0;
          var flows = drawFlows(el, map, results[0], lang, labels, state);
          state.byKey = flows.byKey;
          state.ordered = flows.ordered;
          state.flows = flows.layer;
          var points = drawEnterprises(el, map, results[1], lang, labels, state.colours);
          if (el.dataset.fitLayers === "true" && !el.dataset.view) {
            fitTo(el, [flows.layer, points]);
          }
          var slider = document.getElementById("map-top");
          showTop(state, slider ? Number(slider.value) : 0);
          if (slider) {
            slider.addEventListener("input", function () {
              showTop(state, Number(slider.value));
            });
            slider.addEventListener("change", function () {
              showTop(state, Number(slider.value));
              writeAddress(state, { top: state.top < state.ordered.length ? state.top : null }, true);
            });
          }
          var button = document.getElementById("map-export");
          if (button) {
            button.addEventListener("click", function () {
              exportPng(state, button);
            });
          }
          window.circuflowMaps.onUserMove(el, function () {
            writeAddress(state, { at: viewText(map) }, false);
          });
          var path = detailsPath(state.selection);
          if (path) {
            state.restoring = true;
            openDetails(el, path);
          }
          // The year shown goes into the address too: without it a link would open another reader's latest year.
          writeAddress(state, { year: el.dataset.year }, false);
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
        // What the reader opened goes into the address; what the address opened is already there.
        var selection = selectionOf(body, el.dataset.level);
        if (!state.restoring && selection && selection !== state.selection) {
          writeAddress(state, { sel: selection }, true);
        }
        state.selection = selection;
        state.restoring = false;
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
  // Entries the map wrote itself (htmx restores its own): redraw what the address says.
  window.addEventListener("popstate", function (event) {
    if (event.state && event.state.htmx) {
      return;
    }
    document.querySelectorAll("[data-map][data-flows]").forEach(function (el) {
      var state = states.get(el);
      if (state && state.map && el.isConnected) {
        applyAddress(state);
      }
    });
  });
})();
