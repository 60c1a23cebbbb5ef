// runlock UI: draws each <figure class="chart"> with uPlot from the server's downsampled series;
// dragging across a chart zooms, and the visible step range is fetched again at finer detail.
(function () {
  "use strict";
  var COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];

  function fetchSeries(run, key, start, end) {
    var q = new URLSearchParams({key: key, buckets: "1000"});
    if (start !== null) q.set("start", String(Math.floor(start)));
    if (end !== null) q.set("end", String(Math.ceil(end)));
    return fetch("/runs/" + encodeURIComponent(run) + "/series.json?" + q.toString(), {headers: {Accept: "application/json"}})
      .then(function (r) { if (!r.ok) { throw new Error("series " + r.status); } return r.json(); });
  }

  function load(fig, start, end) {
    var runs = fig.dataset.runs.split(","), key = fig.dataset.key;
    return Promise.all(runs.map(function (run) { return fetchSeries(run, key, start, end); })).then(function (all) {
      var data = uPlot.join(all.map(function (s) { return [s.steps, s.values]; }));
      var points = all.reduce(function (n, s) { return n + s.steps.length; }, 0);
      var note = fig.querySelector(".chart-note");
      var total = all.reduce(function (n, s) { return n + s.points; }, 0);
      note.textContent = points + " of " + total + " points drawn" + (all.some(function (s) { return s.downsampled; }) ? " (min/max per bucket)" : "");
      fig.dataset.drawn = String(points);
      return data;
    });
  }

  function draw(fig) {
    var names = (fig.dataset.names || "").split(","), plotEl = fig.querySelector(".plot");
    fig.dataset.drawing = "1";   // init runs again on every htmx swap: one chart per figure, drawn once
    load(fig, null, null).then(function (data) {
      var series = [{label: "step"}];
      for (var i = 1; i < data.length; i++) {
        series.push({label: names[i - 1] || ("run " + i), stroke: COLOURS[(i - 1) % COLOURS.length], width: 1.5, spanGaps: true});
      }
      var width = Math.max(320, Math.min(plotEl.clientWidth || 600, 900));
      var busy = false;
      var opts = {
        width: width, height: 240, series: series, scales: {x: {time: false}},
        cursor: {drag: {x: true, y: false}},
        hooks: {
          setSelect: [function (u) {
            if (u.select.width < 2 || busy) { return; }
            var lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
            busy = true;
            load(fig, lo, hi).then(function (d) {
              u.setData(d, false);
              u.setScale("x", {min: lo, max: hi});
              u.setSelect({left: 0, width: 0, top: 0, height: 0}, false);
              fig.dataset.zoomed = lo.toFixed(0) + "-" + hi.toFixed(0);
              busy = false;
            }).catch(function (e) { busy = false; fig.querySelector(".chart-note").textContent = String(e); });
          }]
        }
      };
      var plot = new uPlot(opts, data, plotEl);
      plot.over.addEventListener("dblclick", function () {
        load(fig, null, null).then(function (d) { plot.setData(d, true); delete fig.dataset.zoomed; });
      });
      fig.dataset.ready = "1";
    }).catch(function (e) { delete fig.dataset.drawing; fig.querySelector(".chart-note").textContent = String(e); });
  }

  function init() {
    if (typeof uPlot === "undefined") { return; }
    document.querySelectorAll("figure.chart").forEach(function (fig) { if (!fig.dataset.ready && !fig.dataset.drawing) { draw(fig); } });
  }
  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSettle", init);
})();
