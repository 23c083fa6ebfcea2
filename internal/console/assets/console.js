// tidegate console: draws the charts whose data the server put in
// data-chart attributes (with uPlot), and follows a running eval's
// progress. Loaded with script-src 'self'; nothing inline.
"use strict";

(function () {
  var palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

  function drawChart(el) {
    var spec;
    try { spec = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return; }
    if (!spec || !spec.x || spec.x.length === 0) {
      el.textContent = "no data yet";
      el.classList.add("empty");
      return;
    }
    var series = [{}];
    var data = [spec.x];
    spec.series.forEach(function (name, i) {
      var s = { label: name, stroke: palette[i % palette.length], width: 2, spanGaps: false, points: { show: true, size: 5 } };
      if (spec.kind === "bars") {
        s.fill = palette[i % palette.length] + "99";
        s.paths = uPlot.paths.bars({ size: [0.8, 40] });
      }
      series.push(s);
      data.push(spec.ys[i]);
    });
    var opts = {
      title: spec.title,
      width: Math.max(320, Math.min(el.clientWidth || 800, 1000)),
      height: 240,
      series: series,
      scales: { x: spec.range ? { time: true, range: function () { return spec.range; } } : { time: true } },
      axes: [{}, { label: spec.unit || "" }],
    };
    el.chart = new uPlot(opts, data, el);
    el.setAttribute("data-drawn", "true");
  }

  function follow(el) {
    var url = el.getAttribute("data-progress-url");
    var bar = el.querySelector("progress");
    var text = el.querySelector(".progress-text");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (p) {
          bar.max = Math.max(p.total, 1);
          bar.value = p.done;
          text.textContent = p.done + " of " + p.total + " · " + p.status;
          if (p.status === "running") { setTimeout(tick, 1000); } else { window.location.reload(); }
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    setTimeout(tick, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(drawChart);
    document.querySelectorAll("[data-progress-url]").forEach(follow);
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) {
        if (!window.confirm(f.getAttribute("data-confirm"))) { ev.preventDefault(); }
      });
    });
  });
})();
