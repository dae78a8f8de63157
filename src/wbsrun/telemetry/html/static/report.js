// Draws the report's charts with uPlot from the JSON in #wbsrun-charts (telemetry/html/charts.py).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("wbsrun-charts").textContent);
  function fmt(kind) {
    return function (u, ticks) {
      return ticks.map(function (v) {
        if (v == null) return "";
        if (kind === "percent") return Math.round(v * 100) + " %";
        if (kind === "seconds") return v + " s";
        return Math.abs(v) >= 1000 ? (v / 1000) + "k" : String(+v.toFixed(3));
      });
    };
  }
  function draw(spec) {
    var box = document.querySelector("#chart-" + spec.id + " .plot");
    var scales = { x: { time: false } };
    var axes = [{ label: "seconds since start" }];
    spec.axes.forEach(function (a, i) {
      scales[a.scale] = a.range ? { auto: false, range: a.range } : { auto: true };
      axes.push({ scale: a.scale, label: a.label, side: i === 0 ? 3 : 1,
                  values: fmt(a.format), grid: { show: i === 0 } });
    });
    var series = [{ label: "t (s)" }].concat(spec.series.map(function (s) {
      return { label: s.label, scale: s.scale, stroke: s.color, width: 2,
               dash: s.dash ? [6, 4] : undefined, points: { show: false } };
    }));
    var cols = [data.t].concat(spec.series.map(function (s) { return data.columns[s.col]; }));
    var width = Math.max(320, box.clientWidth || 600);
    new uPlot({ width: width, height: 240, scales: scales, axes: axes, series: series }, cols, box);
    box.setAttribute("data-drawn", "1");
  }
  data.charts.forEach(draw);
})();
