// Live parts of a page: each element with data-live is re-fetched from the server (the same
// page with ?partial=1, rendered and escaped by the server's templates) every data-every ms,
// and replaced when it changed. The wait grows when the server is slow to answer, and
// nothing is fetched while the tab is hidden.
"use strict";
(function () {
  var status = document.getElementById("live-status");

  function mark(ok, text) {
    if (!status) return;
    status.textContent = text;
    status.className = ok ? "live" : "live stale";
  }

  function follow(region) {
    var url = region.getAttribute("data-live");
    var every = Number(region.getAttribute("data-every")) || 2000;
    var last = null;

    function later(ms) { window.setTimeout(tick, ms); }

    function tick() {
      if (document.hidden) { later(every); return; }
      var started = Date.now();
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
        .then(function (res) {
          if (res.status === 401) { window.location.reload(); throw new Error("logged out"); }
          if (!res.ok) throw new Error("HTTP " + res.status);
          return res.text();
        })
        .then(function (html) {
          if (html !== last) {
            region.innerHTML = html;  // server-rendered with every job text escaped
            last = html;
          }
          mark(true, "live · " + new Date().toLocaleTimeString());
        })
        .catch(function (err) { mark(false, "not updating: " + err.message); })
        .then(function () { later(Math.max(every, 2 * (Date.now() - started))); });
    }

    later(every);
  }

  // Buttons that cancel or delete ask first (the live part may have been replaced since the
  // page loaded, so the question is asked from the document, for any form inside it).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.querySelectorAll("[data-live]").forEach(follow);
})();
