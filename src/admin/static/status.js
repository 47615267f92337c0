// The status page: polls /api/v1/overview every 2 s with the API key given in the page's
// fragment (#key=...) or typed in, kept in sessionStorage only. No inline script (CSP).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromHash) {
    sessionStorage.setItem("sbkey", fromHash);
    history.replaceState(null, "", location.pathname);
  }
  let key = sessionStorage.getItem("sbkey");

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (cls) td.className = cls;
    return td;
  }
  function fill(id, rows) {
    const body = $(id);
    body.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      tr.append(...cells);
      return tr;
    }));
  }
  function duration(secs) {
    if (secs === null || secs === undefined) return null;
    const h = Math.floor(secs / 3600), m = Math.floor(secs / 60) % 60, s = secs % 60;
    return h + ":" + String(m).padStart(2, "0") + ":" + String(s).padStart(2, "0");
  }
  function pair(o) {
    return o ? o.a_to_b + " / " + o.b_to_a : null;
  }
  function loss(c) {
    if (!c.lost) return null;
    const one = (d) => c.lost[d] + " (" + c.loss_pct[d] + " %)";
    return one("a_to_b") + " / " + one("b_to_a");
  }
  // A monitored trunk is up, down or not yet answered; an unmonitored one is never probed.
  function trunkState(t) {
    const cls = { up: "up", down: "down", unmonitored: "unmonitored" }[t.state] || "unknown";
    return cell(t.state, cls);
  }
  function monitoring(t) {
    return t.monitored ? "OPTIONS every " + t.keepalive_secs + " s" : "not probed";
  }
  function render(o) {
    $("calls-active").textContent = o.calls.length;
    const monitored = o.trunks.filter((t) => t.monitored);
    $("trunks-up").textContent = monitored.filter((t) => t.state === "up").length + " / " + monitored.length;
    $("trunks-unmonitored").textContent = o.trunks.length - monitored.length;
    $("devices-online").textContent = o.devices_online;
    $("faxes-open").textContent = o.faxes_open;
    $("streams-active").textContent = o.streams_active;
    $("bans-active").textContent = o.bans_active;
    fill("calls", o.calls.map((c) => [cell(c.id), cell(c.state), cell(c.src), cell(c.dst), cell(c.trunk),
      cell(duration(c.duration_secs)), cell(c.codec), cell(pair(c.packets)), cell(loss(c)), cell(c.start)]));
    fill("trunks", o.trunks.map((t) => [cell(t.name), cell(monitoring(t)), trunkState(t),
      cell(t.last_reply), cell(t.rtt_ms === null ? null : t.rtt_ms + " ms"), cell(t.registered),
      cell(t.last_error)]));
    fill("devices", o.devices.map((d) => [cell(d.id), cell(d.online ? "yes" : "no", d.online ? "up" : "down"),
      cell(d.last_seen), cell(d.firmware)]));
    $("balances-note").hidden = o.accounts !== null;
    fill("balances", (o.accounts || []).map((a) => [cell(a.id), cell(a.balance), cell(a.available), cell(a.pending)]));
    fill("faxes", o.faxes.map((f) => [cell(f.id), cell(f.to), cell(f.status), cell(f.pages), cell(f.error)]));
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }
  async function tick() {
    if (!key) {
      $("login").hidden = false;
      $("state").textContent = "an API key is needed";
      return;
    }
    try {
      const r = await fetch("/api/v1/overview", { headers: { Authorization: "Bearer " + key } });
      if (r.status === 401 || r.status === 403) {
        sessionStorage.removeItem("sbkey");
        key = null;
        $("board").hidden = true;
        $("login").hidden = false;
        $("state").textContent = "key refused (" + r.status + ")";
        return;
      }
      const o = await r.json();
      render(o);
      $("board").hidden = false;
      $("login").hidden = true;
      $("state").textContent = "live";
    } catch (e) {
      $("state").textContent = "gateway unreachable";
    }
  }
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    key = $("key").value.trim();
    sessionStorage.setItem("sbkey", key);
    tick();
  });
  tick();
  setInterval(tick, 2000);
})();
