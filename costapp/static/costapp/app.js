// costapp pages: draw every chart handed over with json_script, and sort tables on header click.
(function () {
  "use strict";
  function drawCharts() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("[data-chart-target]").forEach(function (box) {
      var data = document.getElementById(box.getAttribute("data-chart-target"));
      if (!data) { return; }
      var fig = JSON.parse(data.textContent);
      window.Plotly.newPlot(box, fig.data, fig.layout, {displaylogo: false, responsive: true});
    });
  }
  function cellValue(row, i) {
    var cell = row.children[i];
    if (!cell) { return ""; }
    var v = cell.getAttribute("data-value");
    if (v !== null && v !== "" && !isNaN(Number(v))) { return Number(v); }
    return cell.textContent.trim().toLowerCase();
  }
  function makeSortable(table) {
    table.querySelectorAll("thead th").forEach(function (th, i) {
      th.classList.add("sort");
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var asc = th.getAttribute("data-dir") !== "asc";
        table.querySelectorAll("thead th").forEach(function (o) { o.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", asc ? "asc" : "desc");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, i), y = cellValue(b, i);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    document.querySelectorAll("table.sortable").forEach(makeSortable);
  });
})();
