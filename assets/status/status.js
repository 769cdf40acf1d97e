// servicewatch status page, written for a wall screen: logs in (a user's password, or a
// display token given once in the address, #display=swd_...), lists every service the
// login sees on tiles sized to fill the screen, keeps them live from the Bayeux
// notifications (WebSocket, or long-polling when WebSockets are blocked), and recovers by
// itself: after a servicewatch restart it is live again within seconds (a display logs in
// again with its token; a person is shown the login). Whenever the states shown may be
// behind (no link, or a cluster node without etcd) every tile is dimmed and says as of
// when. No framework, no inline script: it runs under the page's Content-Security-Policy.
"use strict";
(() => {
  const base = document.querySelector('meta[name="servicewatch-base"]').content;
  const topic = "/notifications/services";
  const TOKEN_KEY = "servicewatch-display-token";
  const $ = (id) => document.getElementById(id);

  const services = new Map(); // id -> resource, in the order the API lists them
  const standings = new Map(); // id -> how it stands beyond its state (GET /redundancy)
  const availability = new Map(); // id -> { "24h": share, "7d": share, "30d": share }
  let clientId = null;
  let socket = null;
  let buffered = null; // changes received while the list is being fetched again
  let messageId = 0;
  let generation = 0; // bumps on each (re)connection, so that a stale loop stops
  let failures = 0; // failed attempts in a row, for the retry delay
  let live = false; // whether the page is listening now
  let how = "live"; // how it listens, once it does
  let clusterStale = false; // the node says its states may be behind (no etcd)
  let asOf = null; // when the states shown were last known current; null while live
  let tokenRefused = false;

  // ---- The display token ------------------------------------------------------------
  // Given once in the address's fragment (never sent to servers, proxies or in Referer),
  // kept in this tab's storage, and taken out of the address bar.
  function displayToken() {
    let token = null;
    try {
      const given = /(?:^#|&)display=([^&]+)/.exec(location.hash);
      if (given) {
        sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(given[1]));
        history.replaceState(null, "", location.pathname + location.search);
      }
      token = sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      // Storage refused (a locked-down browser): the token lives as long as the page.
      const given = /(?:^#|&)display=([^&]+)/.exec(location.hash);
      token = given ? decodeURIComponent(given[1]) : null;
    }
    return token;
  }
  const token = displayToken();

  function api(path, options = {}) {
    const headers = Object.assign(
      { "X-Requested-With": "XMLHttpRequest", Accept: "application/json" },
      options.headers || {});
    return fetch(base + path, Object.assign({ credentials: "same-origin", cache: "no-store" },
      options, { headers }));
  }

  // ---- Times: 24-hour, with the time zone said where a time stands alone --------------
  const zone = (() => {
    const part = new Intl.DateTimeFormat("en-GB", { timeZoneName: "short" })
      .formatToParts(new Date()).find((p) => p.type === "timeZoneName");
    return part ? part.value : "";
  })();
  const hourMinute = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const withSeconds = new Intl.DateTimeFormat("en-GB",
    { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const dayMonth = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });
  const sameDay = (a, b) => a.toDateString() === b.toDateString();
  // "14:02", or "5 Dec 14:02" on another day.
  function clock(date) {
    return (sameDay(date, new Date()) ? "" : dayMonth.format(date) + " ") + hourMinute.format(date);
  }
  // "2026-12-06 14:02:11 CET", for the history.
  function stamp(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " "
      + withSeconds.format(date) + (zone ? " " + zone : "");
  }
  function duration(ms) {
    let s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    return m + " min";
  }
  // Shares shown floored, so that a service that was ever down never reads 100 %.
  function percent(share) {
    if (share === null || share === undefined) return "–";
    if (share >= 1) return "100 %";
    return (Math.floor(share * 10000) / 100).toFixed(2) + " %";
  }

  // ---- The link, and whether what is shown may be behind ------------------------------
  function setLink(kind, text) {
    $("link").className = "link link-" + kind;
    $("link-text").textContent = text;
  }

  function showLink() {
    const behind = !live || clusterStale;
    if (behind && asOf === null) asOf = new Date();
    if (!behind) asOf = null;
    document.body.classList.toggle("behind", behind && services.size > 0);
    const banner = $("banner");
    const shown = !banner.hidden;
    if (behind && services.size > 0) {
      const when = withSeconds.format(asOf) + (zone ? " " + zone : "");
      $("banner-title").textContent = clusterStale && live ? "States may be behind" : "Not connected";
      $("banner-text").textContent = (clusterStale && live
        ? "this servicewatch has lost its cluster. "
        : "no link to servicewatch; retrying. ") + "Showing the states as of " + when + ".";
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    if (shown !== !banner.hidden) layout(); // the banner takes room from the tiles
    for (const p of document.querySelectorAll(".service .asof")) {
      p.textContent = asOf ? "as of " + withSeconds.format(asOf) : "";
    }
    if (live && clusterStale) setLink("stale", "stale: this servicewatch has lost its cluster; states may be behind");
    else if (live) setLink("live", how);
    refreshAges();
  }

  function notice(connect) {
    const now = !!(connect.successful && connect.ext && connect.ext.stale);
    if (now === clusterStale) return;
    clusterStale = now;
    showLink();
  }

  // ---- Logging in, and coming back ----------------------------------------------------
  // Fetches the list (with the display token if the cookie is refused); says how it went.
  async function load() {
    let answer;
    try {
      answer = await api("/services?fields=*");
      if (answer.status === 401 && token && !tokenRefused) {
        answer = await api("/services?fields=*", { headers: { Authorization: "Bearer " + token } });
        if (answer.status === 401) tokenRefused = true;
      }
    } catch (e) {
      return { outcome: "down", why: "no answer from servicewatch" };
    }
    if (answer.status === 401) return { outcome: "login" };
    if (answer.status === 403) return { outcome: "login", why: "this login may not read services" };
    if (!answer.ok) return { outcome: "down", why: "servicewatch answered " + answer.status };
    show((await answer.json()).services);
    return { outcome: "ok" };
  }

  // (Re)starts everything: the list, then the notifications.
  async function recover() {
    const mine = ++generation;
    closeSocket();
    const loaded = await load();
    if (mine !== generation) return;
    if (loaded.outcome === "login") {
      showLogin(loaded.why || (tokenRefused
        ? "this display's token was refused (revoked?): log in, or open the display's link again"
        : null));
      return;
    }
    if (loaded.outcome === "down") {
      retry(mine, loaded.why);
      return;
    }
    hideLogin();
    connect(mine);
  }

  function showLogin(why) {
    live = false;
    generation++;
    closeSocket();
    // No tiles under a login: they could only be stale.
    services.clear();
    $("services").replaceChildren();
    summarize();
    showLink();
    setLink("offline", "not logged in");
    const error = $("login-error");
    error.textContent = why || "";
    error.hidden = !why;
    $("login").hidden = false;
    $("user").focus();
  }

  function hideLogin() {
    $("login").hidden = true;
  }

  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("login-error");
    error.hidden = true;
    const credentials = $("user").value + ":" + $("password").value;
    const encoded = btoa(String.fromCharCode(...new TextEncoder().encode(credentials)));
    let answer;
    try {
      answer = await api("/services?fields=*", { headers: { Authorization: "Basic " + encoded } });
    } catch (e) {
      answer = null;
    }
    $("password").value = "";
    if (!answer || !answer.ok) {
      const why = !answer ? "servicewatch does not answer"
        : answer.status === 401 ? "wrong user or password"
        : answer.status === 429 ? "too many failed logins; wait a minute"
        : answer.status === 403 ? "this user may not read services"
        : "servicewatch answered " + answer.status;
      error.textContent = why;
      error.hidden = false;
      return;
    }
    hideLogin();
    show((await answer.json()).services);
    connect(++generation);
  });

  // ---- The services -------------------------------------------------------------------
  function show(list) {
    services.clear();
    for (const s of list) services.set(s.id, s);
    $("services").replaceChildren(...list.map(tile));
    summarize();
    layout();
  }

  function apply(service) {
    if (buffered) {
      buffered.push(service);
      return;
    }
    const known = services.has(service.id);
    services.set(service.id, service);
    const fresh = tile(service);
    const old = document.querySelector('.service[data-id="' + CSS.escape(service.id) + '"]');
    if (known && old) {
      const focused = old.contains(document.activeElement);
      old.replaceWith(fresh);
      if (focused) fresh.querySelector("button").focus();
    } else {
      $("services").append(fresh);
      layout();
    }
    summarize();
    soon("standings", fetchStandings, 300);
    soon("availability", fetchAvailability, 2000);
  }

  const STATE_WORDS = { Active: "Active", ReadOnly: "Read-only", Inactive: "Inactive" };
  const stateWord = (state) => STATE_WORDS[state] || state;

  function element(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Where a name may break besides its spaces: after "_", ".", "-" or "/", and between
  // the words of a CamelCase name ("Interaction|Server"); never inside a word.
  const JOINTS = /(?<=[_.\-/])|(?<=[a-z])(?=[A-Z])/;
  function breakable(tag, className, text) {
    const e = element(tag, className);
    const parts = text.split(JOINTS);
    parts.forEach((part, i) => {
      e.append(part);
      if (i < parts.length - 1) e.append(document.createElement("wbr"));
    });
    return e;
  }

  function tile(s) {
    const li = element("li", "service state-" + s.state + (s.maintenance ? " in-maintenance" : ""));
    li.dataset.id = s.id;
    li.dataset.state = s.state;
    const button = element("button", "tile");
    button.type = "button";
    const since = element("span", "line since");
    since.dataset.since = s.stateSince || "";
    // Most telling first: what does not fit a small tile is cut at its bottom.
    button.append(
      breakable("span", "name", s.name),
      element("span", "state", stateWord(s.state)),
      element("span", "line standing"),
    );
    if (s.maintenance) {
      const what = s.maintenance.map((w) => (w.instance ? w.instance : "service") + ": " + w.reason);
      button.append(element("span", "line maintenance", "Maintenance: " + what.join("; ")));
    }
    button.append(
      since,
      element("span", "line availability"),
      element("span", "asof", asOf ? "as of " + withSeconds.format(asOf) : ""),
    );
    button.addEventListener("click", () => detail(s.id));
    li.append(button);
    fillStanding(li, s);
    fillAvailability(li, s.id);
    fillAge(since);
    return li;
  }

  // "on backup since 14:02 · primary down", "no backup", "2 of 3 nodes".
  function standingText(s, standing) {
    if (!standing) return { text: "", unprotected: false };
    const health = (name) => {
      const server = (standing.servers || []).find((x) => x.instance === name);
      if (!server) return null;
      return server.maintenance ? "in maintenance" : server.health;
    };
    const parts = [];
    const primary = health("primary"), backup = health("backup");
    if (standing.servingInstance === "backup") {
      const since = standing.servingSince ? " since " + clock(new Date(standing.servingSince)) : "";
      parts.push("on backup" + since + (primary && primary !== "up" ? " · primary " + primary : ""));
    } else if (backup !== null && backup !== "up" && backup !== "degraded") {
      parts.push("no backup (backup " + backup + ")");
    } else if (standing.servingInstance === "primary" && standing.servingSince && backup !== null) {
      parts.push("on primary since " + clock(new Date(standing.servingSince)));
    }
    if (standing.cassandra) {
      const c = standing.cassandra;
      parts.push(c.up + " of " + c.nodes + " nodes" + (c.up < c.quorum ? " (no quorum)" : ""));
    }
    return { text: parts.join(" · "), unprotected: standing.redundant === false && s.state !== "Inactive" };
  }

  function fillStanding(li, s) {
    const { text, unprotected } = standingText(s, standings.get(s.id));
    const p = li.querySelector(".standing");
    p.textContent = (unprotected ? "⚠ " : "") + text;
    p.hidden = !text;
    li.classList.toggle("unprotected", unprotected);
  }

  function fillAvailability(li, id) {
    const a = availability.get(id);
    const p = li.querySelector(".availability");
    p.textContent = a ? percent(a["24h"]) + " over 24 h · " + percent(a["30d"]) + " over 30 d" : "";
    p.hidden = !a;
  }

  // "since 14:02 · 3 min": the age counts to now while live, to the "as of" time when not.
  function fillAge(p) {
    const start = Date.parse(p.dataset.since);
    if (Number.isNaN(start)) {
      p.textContent = "";
      return;
    }
    const until = asOf ? asOf.getTime() : Date.now();
    p.textContent = "since " + clock(new Date(start)) + " · " + duration(until - start);
  }

  function refreshAges() {
    for (const p of document.querySelectorAll(".service .since")) fillAge(p);
  }

  function summarize() {
    const count = {};
    for (const s of services.values()) count[s.state] = (count[s.state] || 0) + 1;
    const parts = ["Active", "ReadOnly", "Inactive"].filter((k) => count[k]).map((k) => count[k] + " " + stateWord(k));
    const noun = services.size === 1 ? " service" : " services";
    $("summary").textContent = services.size ? services.size + noun + (parts.length ? ": " + parts.join(", ") : "") : "";
    let unprotected = 0;
    for (const s of services.values()) if (standingText(s, standings.get(s.id)).unprotected) unprotected++;
    $("summary-unprotected").textContent = unprotected ? unprotected + " without redundancy" : "";
    $("summary-unprotected").hidden = !unprotected;
  }

  // ---- Filling the screen -------------------------------------------------------------
  // The grid whose text is largest for this screen and these services: a tile must hold
  // its longest word on one line (names break only between words) and its lines in its
  // height. Tiles with every line first; when that leaves the text small (hundreds of
  // services), compact tiles of name and state; below a readable size, the page scrolls.
  const FULL_LINES = 7.4, COMPACT_LINES = 4.4; // a tile's height, in units of its font
  const READABLE = 12, FULL_FROM = 18, LARGEST = 110; // px
  const measurer = document.createElement("canvas").getContext("2d");
  function widthEm(text, weight) {
    measurer.font = weight + ' 100px system-ui, "DejaVu Sans", sans-serif';
    return measurer.measureText(text).width / 100;
  }
  // The widest unbreakable piece of any name, and the widest state word, in ems.
  function widestEm() {
    let widest = widthEm("Read-only", 800) * 1.75;
    for (const s of services.values()) {
      for (const word of s.name.split(/\s+/).flatMap((w) => w.split(JOINTS))) widest = Math.max(widest, widthEm(word, 700));
    }
    return widest;
  }

  function layout() {
    const ul = $("services");
    const n = ul.children.length;
    if (!n) return;
    const style = getComputedStyle($("main"));
    const width = $("main").clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const top = ul.getBoundingClientRect().top + window.scrollY;
    const height = Math.max(READABLE * COMPACT_LINES, window.innerHeight - top - parseFloat(style.paddingBottom));
    const gap = Math.round(Math.max(4, Math.min(18, Math.min(width, height) / 90)));
    const widest = widestEm();
    const best = (lines, padding) => {
      let found = null;
      for (let columns = 1; columns <= n; columns++) {
        const rows = Math.ceil(n / columns);
        const w = (width - gap * (columns - 1)) / columns;
        const h = (height - gap * (rows - 1)) / rows;
        const unit = Math.min(w / (widest + padding), h / lines, LARGEST);
        if (!found || unit > found.unit) found = { columns, w, h, unit };
      }
      return found;
    };
    let fit = best(FULL_LINES, 1.3);
    let compact = false;
    if (fit.unit < FULL_FROM) {
      fit = best(COMPACT_LINES, 0.9);
      compact = true;
    }
    let { columns, h, unit } = fit;
    if (unit < READABLE) {
      // Too many for one screen: readable tiles, and the page scrolls.
      unit = READABLE;
      columns = Math.max(1, Math.floor((width + gap) / (READABLE * (widest + 0.9) + gap)));
      h = READABLE * COMPACT_LINES;
    }
    // Not one tile per screen on a phone: a tile is never much higher than its text needs.
    h = Math.min(h, unit * (compact ? COMPACT_LINES : FULL_LINES) * 1.5);
    ul.style.setProperty("--columns", String(columns));
    ul.style.setProperty("--tile-height", Math.floor(h) + "px");
    ul.style.setProperty("--gap", gap + "px");
    ul.style.setProperty("--unit", unit.toFixed(1) + "px");
    ul.classList.toggle("compact", compact);
    ul.dataset.laidOut = window.innerWidth + "x" + window.innerHeight; // for the tests
  }
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(layout, 100);
  });

  // ---- What the resource does not say: redundancy, availability -----------------------
  const timers = {};
  function soon(name, what, delay) {
    if (timers[name]) return;
    timers[name] = setTimeout(() => { timers[name] = null; what(); }, delay);
  }

  let standingsShown = true;
  async function fetchStandings() {
    if (!live || !standingsShown) return;
    try {
      const answer = await api("/redundancy");
      if (answer.status === 404) { standingsShown = false; return; }
      if (!answer.ok) return;
      const body = await answer.json();
      standings.clear();
      for (const s of body.redundancy) standings.set(s.id, s);
    } catch (e) {
      return;
    }
    for (const li of document.querySelectorAll(".service")) {
      const s = services.get(li.dataset.id);
      if (s) fillStanding(li, s);
    }
    summarize();
  }

  let availabilityShown = true;
  async function fetchAvailability() {
    if (!live || !availabilityShown) return;
    try {
      const answer = await api("/availability");
      // No history kept: nothing to compute availability from.
      if (answer.status === 404) { availabilityShown = false; return; }
      if (!answer.ok) return;
      const body = await answer.json();
      availability.clear();
      for (const a of body.availability) {
        const shares = {};
        for (const p of a.periods) shares[p.period] = p.active;
        availability.set(a.id, shares);
      }
    } catch (e) {
      return;
    }
    for (const li of document.querySelectorAll(".service")) fillAvailability(li, li.dataset.id);
  }

  function tick() {
    $("clock").textContent = withSeconds.format(new Date()) + (zone ? " " + zone : "");
    if (!asOf) refreshAges();
  }
  tick();
  setInterval(tick, 1000);
  setInterval(() => soon("standings", fetchStandings, 0), 5000);
  setInterval(() => soon("availability", fetchAvailability, 0), 60000);

  // ---- One service in detail ----------------------------------------------------------
  async function detail(id) {
    const s = services.get(id);
    if (!s) return;
    const dialog = $("detail");
    $("detail-title").textContent = s.name;
    $("detail-summary").textContent = stateWord(s.state)
      + (s.servingInstance ? ", " + s.servingInstance + " serving" : "")
      + (s.stateSince ? ", since " + stamp(new Date(s.stateSince)) : "") + " (" + s.id + ")";
    const servers = $("detail-servers");
    const standing = standings.get(id);
    servers.replaceChildren(...((standing && standing.servers) || []).map((x) =>
      element("li", "", x.instance + ": " + (x.maintenance ? "in maintenance, " : "") + x.health)));
    $("detail-servers-title").hidden = !servers.children.length;
    const list = $("detail-history");
    list.replaceChildren(element("li", "", "loading…"));
    $("detail-availability").textContent = "";
    delete dialog.dataset.loaded;
    if (!dialog.open) dialog.showModal();
    const path = "/services/" + encodeURIComponent(id);
    const [history, shares, instances] = await Promise.all([
      fetchJson(path + "/history?limit=20"),
      fetchJson(path + "/availability"),
      // Hosts, ports and the last check: for supervisors and admins (403 for the others,
      // who keep each server's health from the tile's standing).
      fetchJson(path + "/instances"),
    ]);
    if (instances.ok) {
      servers.replaceChildren(...instances.body.instances.map((x) => element("li", "",
        x.instance + (x.serving ? " (serving)" : "") + ": " + x.health + ", " + x.address
        + (x.lastCheck ? ", " + x.lastCheck.detail : ""))));
      $("detail-servers-title").hidden = !servers.children.length;
    }
    if (shares.ok) {
      $("detail-availability").textContent = "Active " + shares.body.availability.periods
        .map((p) => percent(p.active) + " over " + p.period.replace("h", " h").replace("d", " d")).join(", ")
        + " (maintenance excluded)";
    }
    dialog.dataset.loaded = id; // everything asked has answered (for tests and scripts)
    if (!history.ok) {
      list.replaceChildren(element("li", "", "no history: " + history.why));
      return;
    }
    if (!history.body.history.length) {
      list.replaceChildren(element("li", "", "nothing recorded yet"));
      return;
    }
    list.replaceChildren(...history.body.history.map((c) => {
      const li = document.createElement("li");
      const what = stateWord(c.state) + (c.servingInstance ? ", " + c.servingInstance + " serving" : "");
      li.append(element("span", "when", stamp(new Date(c.at))), what + ": " + c.reason);
      return li;
    }));
  }

  async function fetchJson(path) {
    try {
      const answer = await api(path);
      const body = await answer.json();
      if (!answer.ok) return { ok: false, why: body.statusMessage || String(answer.status) };
      return { ok: true, body };
    } catch (e) {
      return { ok: false, why: e.message };
    }
  }
  $("detail-close").addEventListener("click", () => $("detail").close());

  // ---- Notifications (Bayeux) ---------------------------------------------------------
  const nextId = () => String(++messageId);
  // A connect reply is owed within the server's timeout; a link silent well beyond it is
  // dead even if no socket said so (a machine that vanished sends no close).
  let connectTimeout = 30000;
  let silence = null;
  function expectReply(mine) {
    clearTimeout(silence);
    silence = setTimeout(() => lost(mine), connectTimeout + 15000);
  }

  function handshake(types) {
    return { channel: "/meta/handshake", version: "1.0", supportedConnectionTypes: types, id: nextId() };
  }

  function closeSocket() {
    clearTimeout(silence);
    if (socket) {
      const s = socket;
      socket = null;
      s.onclose = null;
      s.close();
    }
  }

  function connect(mine) {
    if (!live) setLink("connecting", "connecting");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let opened = false;
    let ws;
    try {
      ws = new WebSocket(scheme + location.host + base + "/notifications");
    } catch (e) {
      longPoll(mine);
      return;
    }
    socket = ws;
    const send = (batch) => ws.send(JSON.stringify(batch));
    const connectMessage = () => ({ channel: "/meta/connect", clientId, connectionType: "websocket", id: nextId() });
    ws.onopen = () => send([handshake(["websocket", "long-polling"])]);
    ws.onmessage = (event) => {
      if (mine !== generation) return;
      let batch;
      try { batch = JSON.parse(event.data); } catch (e) { return; }
      for (const m of [].concat(batch)) {
        if (m.channel === topic && m.data) apply(m.data.service);
        else if (m.channel === "/meta/handshake") {
          if (!m.successful) { ws.close(); return; }
          // A WebSocket counts as working once servicewatch answered on it: a proxy that
          // accepts the upgrade and then drops it sends the page to long-polling.
          opened = true;
          clientId = m.clientId;
          if (m.advice && m.advice.timeout) connectTimeout = m.advice.timeout;
          send([{ channel: "/meta/subscribe", clientId, subscription: topic, id: nextId() }]);
        } else if (m.channel === "/meta/subscribe") {
          if (!m.successful) { ws.close(); return; }
          send([connectMessage()]);
          expectReply(mine);
          resync(mine).then((ok) => { if (ok) listening(mine, "live"); });
        } else if (m.channel === "/meta/connect") {
          if (!m.successful || (m.advice && m.advice.reconnect === "handshake")) { ws.close(); return; }
          notice(m);
          const wait = (m.advice && m.advice.interval) || 0;
          expectReply(mine);
          setTimeout(() => {
            if (mine === generation && ws.readyState === WebSocket.OPEN) send([connectMessage()]);
          }, wait);
        }
      }
    };
    ws.onclose = () => {
      if (mine !== generation) return;
      socket = null;
      if (opened) lost(mine);
      else longPoll(mine); // a proxy that refuses WebSockets: long-polling instead
    };
  }

  async function longPoll(mine) {
    const post = async (batch) => {
      const answer = await api("/notifications", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(batch),
      });
      if (!answer.ok) throw new Error("servicewatch answered " + answer.status);
      return answer.json();
    };
    const deliver = (replies) => {
      if (mine !== generation) return;
      for (const m of replies) {
        if (m.channel === topic && m.data) apply(m.data.service);
        else if (m.channel.startsWith("/meta/") && !m.successful) throw new Error(m.error || "refused");
        else if (m.advice && m.advice.reconnect === "handshake") throw new Error("session ended");
        else if (m.channel === "/meta/connect") notice(m);
      }
    };
    try {
      const shook = await post([handshake(["long-polling"])]);
      const reply = shook.find((m) => m.channel === "/meta/handshake");
      if (!reply || !reply.successful) throw new Error("handshake refused");
      clientId = reply.clientId;
      deliver(await post([{ channel: "/meta/subscribe", clientId, subscription: topic, id: nextId() }]));
      if (await resync(mine)) listening(mine, "live (long-polling)");
      while (mine === generation) {
        deliver(await post([{ channel: "/meta/connect", clientId, connectionType: "long-polling", id: nextId() }]));
      }
    } catch (e) {
      if (mine === generation) lost(mine);
    }
  }

  function listening(mine, kind) {
    if (mine !== generation) return;
    live = true;
    how = kind;
    failures = 0;
    showLink();
    fetchStandings();
    fetchAvailability();
  }

  // What happened while the page was not listening: the list again, then the changes
  // that arrived meanwhile, in order. False when the list could not be read.
  async function resync(mine) {
    buffered = [];
    let ok = false;
    try {
      const answer = await api("/services?fields=*");
      if (answer.ok && mine === generation) {
        show((await answer.json()).services);
        ok = true;
      }
    } catch (e) {
      ok = false;
    } finally {
      const meanwhile = buffered;
      buffered = null;
      for (const s of meanwhile) apply(s);
    }
    if (!ok && mine === generation) lost(mine);
    return ok && mine === generation;
  }

  function lost(mine) {
    if (mine !== generation) return;
    generation++;
    closeSocket();
    retry(generation);
  }

  // Tries again soon: every second for the first half minute (a restart is back within
  // seconds), then backing off to 30 s, with jitter so that wall screens do not all come
  // at once.
  function retry(mine, why) {
    live = false;
    failures++;
    const delay = failures <= 30 ? 1000 : Math.min(30000, 1000 * 2 ** Math.min(5, failures - 30));
    const wait = delay / 2 + Math.random() * delay / 2;
    showLink();
    setLink("offline", (why ? why + "; " : "offline; ") + "retrying in " + Math.max(1, Math.round(wait / 1000)) + " s");
    setTimeout(() => { if (mine === generation) recover(); }, wait);
  }

  recover();
})();
