// The alerts page, live: each alert the server streams (server-sent events) becomes a row at the
// top; repeats are dropped; the browser reconnects by itself and sends the last alert's id, so
// nothing is missed. Everything is written as text (textContent), never as markup.
(function () {
  "use strict";
  const table = document.getElementById("alerts");
  const body = table.querySelector("tbody");
  const state = document.getElementById("connection");
  const formTemplate = document.getElementById("verdict-form");
  const photosShown = table.dataset.referencePhotos === "yes";

  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function tick() {
    for (const row of body.rows) row.querySelector(".ago").textContent = ago(row.dataset.ts);
  }

  function cell(row, text, cls) {
    const td = row.insertCell();
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  // The enrolled person's reference photo, for those who adjudicate the alert's site (the
  // server says which alerts have one, and checks again when the photo is asked for).
  function reference(alert) {
    if (!(alert.reference && photosShown)) {
      const none = document.createElement("span");
      none.className = "no-reference";
      none.textContent = "no reference photo";
      return none;
    }
    const img = document.createElement("img");
    img.className = "reference";
    img.src = "/alerts/" + encodeURIComponent(alert.event_id) + "/reference";
    img.alt = "reference photo of the enrolled person " + alert.identity_id;
    return img;
  }

  function add(alert) {
    if (document.getElementById("alert-" + alert.event_id)) return;
    const row = body.insertRow(0);
    row.id = "alert-" + alert.event_id;
    row.dataset.eventId = alert.event_id;
    row.dataset.ts = alert.ts;
    const when = cell(row, "");
    const span = document.createElement("span");
    span.className = "ago";
    when.append(span, document.createElement("br"));
    const small = document.createElement("small");
    small.textContent = alert.ts.slice(0, 19).replace("T", " ") + " UTC";
    when.append(small);
    cell(row, alert.site, "site");
    cell(row, alert.device_id, "device");
    const who = cell(row, "");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = alert.name || "";
    const id = document.createElement("span");
    id.className = "identity";
    id.textContent = alert.identity_id;
    who.append(name, " (", id, ")");
    const photo = cell(row, "", "photo");
    if (alert.may_adjudicate) photo.append(reference(alert));
    const limit = alert.template_threshold === null ? alert.threshold : alert.template_threshold;
    cell(row, alert.score.toFixed(3) + " / " + limit.toFixed(3), "score");
    cell(row, "not yet", "verdict");
    const act = cell(row, "");
    if (alert.may_adjudicate) {
      const form = formTemplate.content.firstElementChild.cloneNode(true);
      form.action = "/alerts/" + encodeURIComponent(alert.event_id) + "/verdict";
      act.append(form);
    }
    row.classList.add("new");
    tick();
  }

  function show(text, which) {
    state.textContent = text;
    state.dataset.state = which;
  }

  const source = new EventSource("/alerts/stream?since=" + encodeURIComponent(table.dataset.since));
  source.onopen = function () { show("live: new alerts appear here as they fire", "live"); };
  source.onerror = function () { show("connection lost: reconnecting (no alert is lost)", "lost"); };
  source.addEventListener("alert", function (e) { add(JSON.parse(e.data)); });
  source.addEventListener("ended", function () {
    source.close();
    show("your session ended: log in again", "ended");
  });
  tick();
  setInterval(tick, 1000);
})();
