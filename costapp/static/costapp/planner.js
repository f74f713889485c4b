// Capacity planner page: draw the figure handed over with json_script (plotly.js from our static).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.Plotly) { return; }
    document.querySelectorAll("[data-planner-chart]").forEach(function (box) {
      var data = document.getElementById(box.getAttribute("data-planner-chart"));
      if (!data) { return; }
      var fig = JSON.parse(data.textContent);
      window.Plotly.newPlot(box, fig.data, fig.layout, {displaylogo: false, responsive: true});
    });
  });
})();
