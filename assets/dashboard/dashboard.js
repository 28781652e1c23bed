// The hourtally dashboard: the last 48 hours from GET analytics/hours, the current hour
// again every second, unique users today, over 24 hours and over 7 days from GET
// analytics/range (unions, not sums of the hours), and the server's health from GET
// metrics. Plain script, no build step; uPlot (vendored, assets/uplot-1.6.32/) draws the
// charts.
//
// For tests and measurements, window.hourtallyDashboard says how far the page got:
// firstChartMs (performance.now() when the charts first had data), and how many refreshes
// of each kind have completed.
(function () {
  "use strict";

  var HOUR_MS = 3600000;
  var HOURS = 48;
  // The current hour every second (one row: cheap), the whole range less often, /metrics
  // every second (events/s is the difference between two scrapes).
  var NOW_EVERY_MS = 1000;
  var FULL_EVERY_MS = 5000;
  var METRICS_EVERY_MS = 1000;
  // A union's cost grows with the users of its span: the spans are asked for again after
  // 20 times as long as the last round took (at least 5 s), so an open page costs the
  // server at most about a twentieth of a core.
  var SPANS_EVERY_MS = 5000;
  var SPANS_COST_FACTOR = 20;
  var DAY_MS = 24 * HOUR_MS;
  var CHART_HEIGHT = 210;
  var WHOLE_STEPS = [];
  for (var e = 1; e < 1e16; e *= 10) WHOLE_STEPS.push(e, 2 * e, 5 * e);

  var SERIES = [
    { key: "unique_users", id: "users", label: "unique users in the hour", color: "#2a6fdb" },
    { key: "clicks", id: "clicks", label: "clicks", color: "#d9822b" },
    { key: "impressions", id: "impressions", label: "impressions", color: "#2e9d5b" },
  ];

  var state = (window.hourtallyDashboard = {
    firstChartMs: null,
    nowRefreshes: 0,
    fullRefreshes: 0,
    metricsScrapes: 0,
    spanRefreshes: 0,
    errors: 0,
    // The /metrics reader, for the browser test to feed OpenMetrics text it cannot get
    // from this server yet.
    parseMetrics: null,
  });

  // hour_start_ms -> {unique_users, clicks, impressions}
  var rows = new Map();
  var charts = [];
  var lastScrape = null; // {t, accepted}

  function el(id) {
    return document.getElementById(id);
  }

  function currentHourStart() {
    return Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function utcLabel(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":00";
  }

  function localLabel(ms) {
    var d = new Date(ms);
    return pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
      pad(d.getMinutes());
  }

  // An axis tick: the hour, and (`withDate`) the date where the day changes.
  function tickLabels(utc, withDate) {
    return function (u, splits) {
      var lastDay = null;
      return splits.map(function (s) {
        var d = new Date(s * 1000);
        var day = utc ? d.getUTCDate() : d.getDate();
        var hh = pad(utc ? d.getUTCHours() : d.getHours());
        var mm = pad(utc ? d.getUTCMinutes() : d.getMinutes());
        var label = hh + ":" + mm;
        if (withDate && day !== lastDay) {
          var mon = (utc ? d.getUTCMonth() : d.getMonth()) + 1;
          label += "\n" + pad(mon) + "-" + pad(day);
          lastDay = day;
        }
        return label;
      });
    };
  }

  function localZone() {
    var off = -new Date().getTimezoneOffset();
    var sign = off < 0 ? "-" : "+";
    off = Math.abs(off);
    return "UTC" + sign + pad(Math.floor(off / 60)) + ":" + pad(off % 60);
  }

  function fmt(n) {
    return n == null ? "–" : Number(n).toLocaleString("en-US");
  }

  // ---- data ----

  function fetchRange(fromMs, toMs) {
    return fetch("analytics/hours?from=" + fromMs + "&to=" + toMs, {
      headers: { Accept: "application/json" },
      cache: "no-store",
    }).then(function (r) {
      if (!r.ok) {
        return r.text().then(function (t) {
          throw new Error("analytics/hours: " + r.status + " " + t.trim());
        });
      }
      return r.json();
    }).then(function (list) {
      list.forEach(function (row) {
        rows.set(row.hour_start_ms, row);
      });
    });
  }

  function refreshNow() {
    var now = Date.now();
    return fetchRange(now, now).then(function () {
      state.nowRefreshes++;
      render();
    });
  }

  function refreshFull() {
    var start = currentHourStart() - (HOURS - 1) * HOUR_MS;
    return fetchRange(start, Date.now()).then(function () {
      state.fullRefreshes++;
      // Forget hours that left the window.
      rows.forEach(function (_, k) {
        if (k < start) rows.delete(k);
      });
      render();
      // Time to first chart: the whole window drawn (navigation start = 0).
      if (state.firstChartMs == null) state.firstChartMs = performance.now();
    });
  }

  // Unique users over [fromMs, toMs]: the counts, or why the server cannot count them
  // (422: an hour of the span kept only its totals) as {refused: reason}.
  function fetchSpan(fromMs, toMs) {
    return fetch("analytics/range?from=" + fromMs + "&to=" + toMs, { cache: "no-store" })
      .then(function (r) {
        return r.text().then(function (t) {
          if (r.status === 422) return { refused: t.trim() };
          if (!r.ok) throw new Error("analytics/range: " + r.status + " " + t.trim());
          var counts = {};
          t.split("\n").forEach(function (line) {
            var kv = line.split(",");
            if (kv.length === 2) counts[kv[0]] = Number(kv[1]);
          });
          return counts;
        });
      });
  }

  function showSpan(id, answer) {
    var node = el(id);
    if (answer.refused) {
      node.textContent = "–";
      node.title = answer.refused;
      node.dataset.value = "";
      node.dataset.refused = answer.refused;
    } else {
      node.textContent = fmt(answer.unique_users);
      node.title = fmt(answer.clicks) + " clicks, " + fmt(answer.impressions) + " impressions";
      node.dataset.value = String(answer.unique_users);
      delete node.dataset.refused;
    }
  }

  function refreshSpans() {
    var now = Date.now();
    var hour = currentHourStart();
    var spans = [
      ["span-today", Math.floor(now / DAY_MS) * DAY_MS],
      ["span-day", hour - 23 * HOUR_MS],
      ["span-week", hour - 167 * HOUR_MS],
    ];
    // One after another: the server counts one range at a time anyway.
    return spans.reduce(function (p, span) {
      return p.then(function () {
        return fetchSpan(span[1], now).then(function (a) { showSpan(span[0], a); });
      });
    }, Promise.resolve()).then(function () {
      state.spanRefreshes++;
    });
  }

  // /metrics, read leniently: skip comments (# HELP, # TYPE, # EOF), then
  // `name{label="value",...} value [timestamp]`. Prometheus text and OpenMetrics alike.
  function parseMetrics(text) {
    var samples = [];
    text.split("\n").forEach(function (line) {
      line = line.trim();
      if (!line || line.charAt(0) === "#") return;
      var i = 0;
      while (i < line.length && line[i] !== "{" && line[i] !== " " && line[i] !== "\t") i++;
      var name = line.slice(0, i);
      var labels = {};
      if (line[i] === "{") {
        i++;
        while (i < line.length && line[i] !== "}") {
          var eq = line.indexOf("=", i);
          if (eq < 0) return;
          var key = line.slice(i, eq).replace(/^[\s,]+/, "").trim();
          i = eq + 1;
          while (line[i] === " ") i++;
          if (line[i] !== '"') return;
          i++;
          var value = "";
          while (i < line.length && line[i] !== '"') {
            if (line[i] === "\\" && i + 1 < line.length) {
              var c = line[i + 1];
              value += c === "n" ? "\n" : c;
              i += 2;
            } else {
              value += line[i++];
            }
          }
          i++; // the closing quote
          labels[key] = value;
          while (i < line.length && (line[i] === "," || line[i] === " ")) i++;
        }
        i++; // the closing brace
      }
      var rest = line.slice(i).trim().split(/\s+/);
      var v = parseFloat(rest[0]);
      if (name && !isNaN(v)) samples.push({ name: name, labels: labels, value: v });
    });
    return samples;
  }

  state.parseMetrics = parseMetrics;

  function scrapeMetrics() {
    return fetch("metrics", { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("metrics: " + r.status);
      return r.text();
    }).then(function (text) {
      var t = performance.now();
      var samples = parseMetrics(text);
      var accepted = null;
      var depth = null;
      var rejections = [];
      samples.forEach(function (s) {
        if (s.name === "hourtally_events_accepted_total") accepted = s.value;
        else if (s.name === "hourtally_queue_depth") depth = s.value;
        else if (s.name === "hourtally_http_rejections_total" && s.labels.reason) {
          rejections.push({ reason: s.labels.reason, value: s.value });
        }
      });
      if (accepted != null && lastScrape && t > lastScrape.t) {
        var rate = ((accepted - lastScrape.accepted) * 1000) / (t - lastScrape.t);
        el("events-rate").textContent = rate.toFixed(rate < 10 ? 1 : 0);
        el("events-rate").dataset.value = String(rate);
      }
      if (accepted != null) {
        lastScrape = { t: t, accepted: accepted };
        el("events-accepted").textContent = fmt(accepted);
        el("events-accepted").dataset.value = String(accepted);
      }
      if (depth != null) {
        el("queue-depth").textContent = fmt(depth);
        el("queue-depth").dataset.value = String(depth);
      }
      renderRejections(rejections);
      state.metricsScrapes++;
    });
  }

  // ---- drawing ----

  function renderRejections(list) {
    var shown = list.filter(function (r) { return r.value > 0; })
      .sort(function (a, b) { return b.value - a.value; });
    var body = el("rejections").tBodies[0];
    body.textContent = "";
    shown.forEach(function (r) {
      var tr = body.insertRow();
      tr.dataset.reason = r.reason;
      tr.dataset.value = String(r.value);
      tr.insertCell().textContent = r.reason;
      tr.insertCell().textContent = fmt(r.value);
    });
    el("rejections-none").hidden = shown.length > 0;
  }

  function windowHours() {
    var first = currentHourStart() - (HOURS - 1) * HOUR_MS;
    var hours = [];
    for (var i = 0; i < HOURS; i++) hours.push(first + i * HOUR_MS);
    return hours;
  }

  // Shades the current hour behind the bars.
  function shadeNow(u) {
    var start = currentHourStart() / 1000;
    var x0 = u.valToPos(start, "x", true);
    var x1 = u.valToPos(start + 3600, "x", true);
    var ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = "rgba(255, 196, 0, 0.25)";
    ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
    ctx.restore();
  }

  function chartWidth(node) {
    return Math.max(200, node.clientWidth);
  }

  function makeChart(s, data) {
    var node = el("chart-" + s.id);
    var opts = {
      title: s.label,
      width: chartWidth(node),
      height: CHART_HEIGHT,
      scales: {
        x: { time: true, range: function () {
          var first = currentHourStart() / 1000 - (HOURS - 1) * 3600;
          return [first, first + HOURS * 3600];
        } },
        y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } },
      },
      axes: [
        { scale: "x", side: 2, space: 56, size: 46, label: "UTC", labelSize: 14,
          values: tickLabels(true, true) },
        // Counts are whole numbers: no tick at 0.5.
        { scale: "y", side: 3, size: 50, space: 20, incrs: WHOLE_STEPS },
        { scale: "x", side: 0, space: 56, size: 34, label: "local (" + localZone() + ")",
          labelSize: 14, values: tickLabels(false, false) },
      ],
      series: [
        { label: "hour (UTC)", value: function (u, v) {
          return v == null ? "–" : utcLabel((v - 1800) * 1000);
        } },
        {
          label: s.label,
          stroke: s.color,
          fill: s.color + "88",
          width: 1,
          paths: uPlot.paths.bars({ size: [0.8, 40] }),
          points: { show: false },
          value: function (u, v) { return fmt(v); },
        },
      ],
      legend: { live: true },
      hooks: { drawClear: [shadeNow] },
    };
    return new uPlot(opts, data, node);
  }

  function render() {
    var hours = windowHours();
    // Bars sit in the middle of their hour, so an hour's bar spans its own hour.
    var xs = hours.map(function (h) { return h / 1000 + 1800; });
    SERIES.forEach(function (s, i) {
      var ys = hours.map(function (h) {
        var r = rows.get(h);
        return r ? r[s.key] : null;
      });
      if (charts[i]) charts[i].setData([xs, ys]);
      else charts[i] = makeChart(s, [xs, ys]);
    });

    var nowStart = currentHourStart();
    var now = rows.get(nowStart) || null;
    el("now").dataset.hourStartMs = String(nowStart);
    el("now-hour").textContent = utcLabel(nowStart) + " UTC · " + localLabel(nowStart) +
      " local";
    SERIES.forEach(function (s) {
      var node = el("now-" + s.id);
      node.textContent = now ? fmt(now[s.key]) : "–";
      node.dataset.value = now ? String(now[s.key]) : "";
    });

    var body = el("hours").tBodies[0];
    body.textContent = "";
    hours.slice().reverse().forEach(function (h) {
      var r = rows.get(h);
      var tr = body.insertRow();
      tr.dataset.hourStartMs = String(h);
      if (h === nowStart) tr.className = "now";
      tr.insertCell().textContent = utcLabel(h);
      tr.insertCell().textContent = localLabel(h);
      SERIES.forEach(function (s) {
        var v = r ? r[s.key] : null;
        tr.insertCell().textContent = fmt(v);
        tr.dataset[s.id] = v == null ? "" : String(v);
      });
    });
  }

  function resize() {
    charts.forEach(function (u, i) {
      var node = el("chart-" + SERIES[i].id);
      u.setSize({ width: chartWidth(node), height: CHART_HEIGHT });
    });
  }

  // ---- loops ----

  function setStatus(ok, text) {
    var s = el("status");
    s.dataset.state = ok ? "ok" : "error";
    s.textContent = text;
  }

  function guard(p) {
    return p.then(function () {
      setStatus(true, "live · updated " + new Date().toLocaleTimeString());
    }, function (e) {
      state.errors++;
      setStatus(false, String(e && e.message ? e.message : e));
    });
  }

  // Each loop waits for its answer before it schedules the next, so a slow server is
  // never asked twice at once.
  function every(ms, task) {
    function run() {
      guard(task()).then(function () { setTimeout(run, ms); });
    }
    run();
  }

  var lastHour = currentHourStart();
  every(NOW_EVERY_MS, function () {
    // A new hour: fetch the whole window again so the chart moves along.
    if (currentHourStart() !== lastHour) {
      lastHour = currentHourStart();
      return refreshFull();
    }
    return refreshNow();
  });
  every(FULL_EVERY_MS, refreshFull);
  every(METRICS_EVERY_MS, scrapeMetrics);
  (function spans() {
    var started = performance.now();
    guard(refreshSpans()).then(function () {
      var took = performance.now() - started;
      setTimeout(spans, Math.max(SPANS_EVERY_MS, SPANS_COST_FACTOR * took));
    });
  })();
  window.addEventListener("resize", resize);
})();
