// The fleet table, refreshed every 10 s from /fleet.json; everything written as text.
(function () {
  "use strict";
  const body = document.querySelector("#fleet tbody");
  const error = document.getElementById("fleet-error");
  const text = (v) => (v === null || v === undefined ? "" : String(v));
  const per1000 = (e) => (e && e.per_1000 !== null && e.per_1000 !== undefined ? String(e.per_1000) : "-");

  function render(devices) {
    body.replaceChildren();
    for (const d of devices) {
      const row = body.insertRow();
      const cells = [
        d.device,
        text(d.state) + (d.stale ? " (stale)" : ""),
        text(d.last_seen),
        text(d.software),
        text(d.detector) + " / " + text(d.embedder),
        text(d.config_version) + " " + text(d.config_outcome),
        text(d.gallery_version),
        text(d.threshold),
        text(d.fmr),
        per1000(d.false_alerts_per_1000_mixed) + ", " + per1000(d.false_alerts_per_1000_bound),
        text(d.last_refused),
      ];
      for (const value of cells) row.insertCell().textContent = value;
    }
  }

  async function refresh() {
    try {
      const answer = await fetch("/fleet.json", { credentials: "same-origin" });
      if (!answer.ok) throw new Error("the console answered " + answer.status);
      const data = await answer.json();
      error.textContent = data.error || "";
      render(data.devices);
    } catch (e) {
      error.textContent = "cannot refresh: " + e.message;
    }
  }

  setInterval(refresh, 10000);
})();
