// Live status on "My submissions": polls the API while an entry is queued or running,
// updates its status and queue position, and reloads the page when one finishes.
(function () {
  var table = document.getElementById("my-subs");
  if (!table || !table.getAttribute("data-poll")) return;
  var url = table.getAttribute("data-api");
  var active = {};
  table.querySelectorAll("tr[data-id]").forEach(function (tr) {
    var st = tr.querySelector(".status");
    if (st && /status-(submitted|queued|running)/.test(st.className)) active[tr.getAttribute("data-id")] = true;
  });
  var labels = { submitted: "Submitted", queued: "Queued", running: "Running", scored: "Scored", published: "Published", failed: "Failed" };

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) return schedule(10000);
        document.getElementById("q-queued").textContent = body.queue.queued;
        document.getElementById("q-running").textContent = body.queue.running;
        var still = {};
        body.results.forEach(function (s) {
          still[s.id] = true;
          var tr = table.querySelector('tr[data-id="' + s.id + '"]');
          if (!tr) return;
          var cell = tr.querySelector(".status");
          cell.className = "status status-" + s.status;
          cell.querySelector(".st").textContent = labels[s.status] || s.status;
          cell.querySelector(".pos").textContent = s.queue_position ? "· position " + s.queue_position + " in the queue" : "";
        });
        var finished = Object.keys(active).some(function (id) { return !still[id]; });
        if (finished) return window.location.reload();
        active = still;
        if (Object.keys(still).length) schedule(3000);
      })
      .catch(function () { schedule(10000); });
  }
  function schedule(ms) { window.setTimeout(tick, ms); }
  schedule(2000);
})();
