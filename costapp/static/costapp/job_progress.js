// Job pages: re-fetch the progress fragment every second until the job has finished.
(function () {
  "use strict";
  function poll(box) {
    var url = box.getAttribute("data-poll-url");
    function finished() {
      var p = box.querySelector("#job-progress");
      return p && p.getAttribute("data-finished") === "1";
    }
    function tick() {
      if (finished()) { return; }
      fetch(url, {headers: {"Accept": "text/html"}, credentials: "same-origin", cache: "no-store"})
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { box.innerHTML = html; })
        .catch(function () { /* keep the last state; try again */ })
        .then(function () { if (!finished()) { window.setTimeout(tick, 1000); } });
    }
    window.setTimeout(tick, 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll-url]").forEach(poll);
  });
})();
