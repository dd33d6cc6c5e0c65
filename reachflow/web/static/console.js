// reachflow console: live regions and confirmations. No framework, no build step.
// An element with data-live-src is refreshed from that URL (an HTML fragment of the same
// page) by polling with back-off: every second while it changes, doubling up to 30 s while it
// does not, up to 60 s after errors; paused while the tab is hidden. A 401 (the session ended)
// stops the polling and says so.
(function () {
  "use strict";
  var FAST = 1000, SLOW = 30000, FAILED = 60000;

  function live(el) {
    var url = el.getAttribute("data-live-src");
    var delay = FAST, timer = null, stopped = false, last = null;

    function schedule() {
      if (stopped) return;
      clearTimeout(timer);
      timer = setTimeout(poll, delay);
    }
    function poll() {
      if (document.hidden) { schedule(); return; }
      // Never replace what the user is using (a focused button or field in the region).
      if (el.contains(document.activeElement) && document.activeElement !== el) { schedule(); return; }
      fetch(url, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
        .then(function (response) {
          if (response.status === 401) {
            stopped = true;
            el.insertAdjacentHTML("beforebegin", '<p class="error" role="alert">Your session has ended: <a href="/console/sign-in">sign in again</a>.</p>');
            return null;
          }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          if (html === null || html === undefined) return;
          // The focus may have moved into the region while the request was out.
          if (el.contains(document.activeElement) && document.activeElement !== el) { schedule(); return; }
          if (html !== last) {
            el.innerHTML = html;
            last = html;
            el.setAttribute("data-live-updated", String(Date.now()));
            delay = FAST;
          } else {
            delay = Math.min(delay * 2, SLOW);
          }
          schedule();
        })
        .catch(function () {
          delay = Math.min(Math.max(delay * 2, FAST * 4), FAILED);
          schedule();
        });
    }
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { delay = FAST; schedule(); }
    });
    schedule();
  }

  function confirmations(root) {
    root.addEventListener("submit", function (event) {
      var form = event.target;
      var question = form.getAttribute && form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var regions = document.querySelectorAll("[data-live-src]");
    for (var i = 0; i < regions.length; i++) live(regions[i]);
    confirmations(document);
  });
})();
