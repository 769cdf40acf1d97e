// servicewatch status page: logs in, lists every service the user sees, and keeps it live
// from the Bayeux notifications (WebSocket, or long-polling when WebSockets are blocked),
// reconnecting by itself. No framework, no inline script: it runs under the page's
// Content-Security-Policy as served.
"use strict";
(() => {
  const base = document.querySelector('meta[name="servicewatch-base"]').content;
  const topic = "/notifications/services";
  const services = new Map(); // id -> resource, in the order the API lists them
  let clientId = null;
  let socket = null;
  let backoff = 1000;
  let buffered = null; // changes received while the list is being fetched again
  let messageId = 0;
  let generation = 0; // bumps on each (re)connection, so that a stale loop stops
  const $ = (id) => document.getElementById(id);

  function api(path, options = {}) {
    const headers = Object.assign(
      { "X-Requested-With": "XMLHttpRequest", Accept: "application/json" },
      options.headers || {});
    return fetch(base + path, Object.assign({ credentials: "same-origin", cache: "no-store" },
      options, { headers }));
  }

  function setLink(kind, text) {
    $("link").className = "link link-" + kind;
    $("link-text").textContent = text;
  }

  // A servicewatch node of a cluster that has lost etcd marks its connect replies stale:
  // the states shown may be behind until it is back (or the page moves to another node).
  let live = "live"; // how the page listens, once it does
  let stale = false;
  function showLive() {
    if (stale) setLink("stale", "stale: this servicewatch has lost its cluster; states may be behind");
    else setLink("live", live);
  }
  function notice(connect) {
    const now = !!(connect.successful && connect.ext && connect.ext.stale);
    if (now === stale) return;
    stale = now;
    showLive();
  }

  // ---- Logging in -------------------------------------------------------------------
  async function start() {
    let answer;
    try {
      answer = await api("/services?fields=*");
    } catch (e) {
      setLink("offline", "no answer from servicewatch; retrying");
      setTimeout(start, 3000);
      return;
    }
    if (answer.status === 401) {
      setLink("offline", "not logged in");
      $("login").hidden = false;
      $("user").focus();
      return;
    }
    if (!answer.ok) {
      setLink("offline", "servicewatch answered " + answer.status + "; retrying");
      setTimeout(start, 3000);
      return;
    }
    show((await answer.json()).services);
    connect();
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
    $("login").hidden = true;
    show((await answer.json()).services);
    connect();
  });

  // ---- The services -----------------------------------------------------------------
  function show(list) {
    services.clear();
    for (const s of list) services.set(s.id, s);
    const ul = $("services");
    ul.replaceChildren(...list.map(tile));
    summarize();
  }

  function apply(service) {
    if (buffered) {
      buffered.push(service);
      return;
    }
    const known = services.has(service.id);
    services.set(service.id, service);
    const fresh = tile(service);
    const old = document.querySelector('[data-id="' + CSS.escape(service.id) + '"]');
    if (known && old) old.replaceWith(fresh);
    else $("services").append(fresh);
    summarize();
  }

  function tile(s) {
    const li = document.createElement("li");
    li.className = "service state-" + s.state + (s.maintenance ? " in-maintenance" : "");
    li.dataset.id = s.id;
    li.dataset.state = s.state;
    li.tabIndex = 0;
    const name = element("p", "name", s.name === s.id ? s.name : s.name + " (" + s.id + ")");
    const state = element("p", "state", s.state === "ReadOnly" ? "Read-only" : s.state);
    const serving = s.servingInstance ? "on " + s.servingInstance + ", " : "";
    const detail = element("p", "detail", serving + "for " + age(s.stateSince));
    detail.dataset.since = s.stateSince || "";
    detail.dataset.serving = serving;
    li.append(name, state, detail);
    if (s.maintenance) {
      const what = s.maintenance.map((w) => (w.instance ? w.instance : "service") + ": " + w.reason);
      li.append(element("p", "maintenance", "Maintenance: " + what.join("; ")));
    }
    li.addEventListener("click", () => history(s));
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") history(s); });
    return li;
  }

  function element(tag, className, text) {
    const e = document.createElement(tag);
    e.className = className;
    e.textContent = text;
    return e;
  }

  function summarize() {
    const count = {};
    for (const s of services.values()) count[s.state] = (count[s.state] || 0) + 1;
    const parts = ["Active", "ReadOnly", "Inactive"].filter((k) => count[k]).map((k) => count[k] + " " + k);
    const noun = services.size === 1 ? " service" : " services";
    $("summary").textContent = services.size + noun + (parts.length ? ": " + parts.join(", ") : "");
  }

  function age(since) {
    const start = Date.parse(since);
    if (Number.isNaN(start)) return "a while";
    let s = Math.max(0, Math.round((Date.now() - start) / 1000));
    if (s < 60) return s + " s";
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    return m + " min";
  }

  setInterval(() => {
    for (const p of document.querySelectorAll(".service .detail")) {
      p.textContent = p.dataset.serving + "for " + age(p.dataset.since);
    }
  }, 1000);

  // ---- History of one service -------------------------------------------------------
  async function history(s) {
    $("history-title").textContent = "Recent history of " + s.name;
    const list = $("history-list");
    list.replaceChildren(element("li", "", "loading…"));
    $("history").hidden = false;
    let body = null;
    try {
      const answer = await api("/services/" + encodeURIComponent(s.id) + "/history?limit=20");
      body = await answer.json();
      if (!answer.ok) throw new Error(body.statusMessage || answer.status);
    } catch (e) {
      list.replaceChildren(element("li", "", "no history: " + e.message));
      return;
    }
    if (!body.history.length) {
      list.replaceChildren(element("li", "", "nothing recorded yet"));
      return;
    }
    list.replaceChildren(...body.history.map((c) => {
      const li = document.createElement("li");
      const what = c.state + (c.servingInstance ? ", " + c.servingInstance + " serving" : "");
      li.append(element("span", "when", new Date(c.at).toLocaleString()), what + ": " + c.reason);
      return li;
    }));
  }
  $("history-close").addEventListener("click", () => { $("history").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("history").hidden = true; });

  // ---- Notifications (Bayeux) -------------------------------------------------------
  const nextId = () => String(++messageId);

  function handshake(types) {
    return { channel: "/meta/handshake", version: "1.0", supportedConnectionTypes: types, id: nextId() };
  }

  function connect() {
    const mine = ++generation;
    setLink("connecting", "connecting");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let opened = false;
    try {
      socket = new WebSocket(scheme + location.host + base + "/notifications");
    } catch (e) {
      longPoll(mine);
      return;
    }
    const send = (batch) => socket.send(JSON.stringify(batch));
    socket.onopen = () => send([handshake(["websocket", "long-polling"])]);
    socket.onmessage = (event) => {
      let batch;
      try { batch = JSON.parse(event.data); } catch (e) { return; }
      for (const m of [].concat(batch)) {
        if (m.channel === topic && m.data) apply(m.data.service);
        else if (m.channel === "/meta/handshake") {
          if (!m.successful) { socket.close(); return; }
          // A WebSocket counts as working once servicewatch answered on it: a proxy that
          // accepts the upgrade and then drops it sends the page to long-polling.
          opened = true;
          clientId = m.clientId;
          send([{ channel: "/meta/subscribe", clientId, subscription: topic, id: nextId() }]);
        } else if (m.channel === "/meta/subscribe") {
          if (!m.successful) { socket.close(); return; }
          send([{ channel: "/meta/connect", clientId, connectionType: "websocket", id: nextId() }]);
          resync(mine).then(() => { if (mine === generation) { live = "live"; showLive(); backoff = 1000; } });
        } else if (m.channel === "/meta/connect") {
          if (!m.successful || (m.advice && m.advice.reconnect === "handshake")) { socket.close(); return; }
          notice(m);
          const wait = (m.advice && m.advice.interval) || 0;
          setTimeout(() => {
            if (mine === generation && socket && socket.readyState === WebSocket.OPEN) {
              send([{ channel: "/meta/connect", clientId, connectionType: "websocket", id: nextId() }]);
            }
          }, wait);
        }
      }
    };
    socket.onclose = () => {
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
      await resync(mine);
      live = "live (long-polling)";
      showLive();
      backoff = 1000;
      while (mine === generation) {
        deliver(await post([{ channel: "/meta/connect", clientId, connectionType: "long-polling", id: nextId() }]));
      }
    } catch (e) {
      if (mine === generation) lost(mine);
    }
  }

  // What happened while the page was not listening: the list again, then the changes
  // that arrived meanwhile, in order.
  async function resync(mine) {
    buffered = [];
    try {
      const answer = await api("/services?fields=*");
      if (answer.status === 401) { location.reload(); return; }
      if (answer.ok && mine === generation) show((await answer.json()).services);
    } finally {
      const meanwhile = buffered;
      buffered = null;
      for (const s of meanwhile) apply(s);
    }
  }

  function lost(mine) {
    if (mine !== generation) return;
    generation++;
    const seconds = Math.round(backoff / 1000);
    setLink("offline", "offline; retrying in " + seconds + " s");
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 30000);
  }

  start();
})();
