// Follows a broadcast's progress without reloading the page: the server
// sends a "progress" event whenever the counts change and "done" at the
// end. Without this script the page reloads itself (a <noscript> refresh).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || live.dataset.state === "done" || !window.EventSource) {
    return;
  }
  var bar = document.getElementById("bar");
  var state = document.getElementById("state");
  function set(name, value) {
    var nodes = live.querySelectorAll('[data-count="' + name + '"]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = String(value);
    }
  }
  var names = ["total", "queued", "sent", "delivered", "failed", "suppressed", "acknowledged", "finished"];
  var es = new EventSource(live.dataset.events);
  es.addEventListener("progress", function (e) {
    var p = JSON.parse(e.data);
    names.forEach(function (n) { set(n, p[n]); });
    (p.channels || []).forEach(function (c) {
      names.forEach(function (n) { set(c.channel + "/" + n, c[n]); });
    });
    bar.max = p.total;
    bar.value = p.finished;
    if (!p.done) {
      state.textContent = "Sending… this page updates by itself.";
    }
  });
  es.addEventListener("done", function () {
    es.close();
    live.dataset.state = "done";
    state.textContent = "Finished: nothing is queued or being sent.";
  });
  es.onerror = function () {
    if (live.dataset.state !== "done") {
      state.textContent = "Lost the live connection; retrying. You can also reload the page.";
    }
  };
})();
