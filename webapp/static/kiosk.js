/* Roomsync tablets (room panel and lobby board).
 * - Conditional polls: the fragment's htmx poll sends the ETag it last got (If-None-Match); a 304 swaps
 *   nothing (see the page's htmx-config), so an unchanged panel costs the server no rendering.
 * - Offline: when a poll fails (network error, timeout, 5xx) the page shows the offline badge, disables the
 *   action buttons and recomputes every status from the day's schedule embedded in the fragment
 *   (computeStatus: the twin of webapp/kiosk/status.py, keep both rules identical); the next answered poll
 *   brings everything back by itself (a whole fragment: the ETag is forgotten while offline).
 * - The clock shows the venue's time (data-tz) and ticks every second.
 * - Actions that need a PIN or the person's email/badge ask for it in #kiosk-dialog before they are sent.
 * - A message (#kiosk-toast) fades after a few seconds.
 */
(function () {
  "use strict";

  var LABELS = { free: "Free", soon: "Starting soon", busy: "Busy", closed: "Closed" };
  var tz = document.body.getAttribute("data-tz") || undefined;
  var etag = null;
  var offline = false;

  function formatter(options) {
    try { return new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: tz }, options)); }
    catch (e) { return new Intl.DateTimeFormat("en-GB", options); }
  }
  var hhmm = formatter({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  var dayHhmm = formatter({ weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  var longDate = formatter({ weekday: "long", day: "2-digit", month: "long" });

  function hm(ms) { return hhmm.format(new Date(ms)); }

  /* The status rule (webapp/kiosk/status.py `compute`): busy (with back-to-back items merged) > soon > closed
   * > free. Times are milliseconds since the epoch. */
  function computeStatus(now, s) {
    var items = (s.items || []).filter(function (i) { return i.end > i.start; })
      .sort(function (a, b) { return a.start - b.start || a.end - b.end; });
    var soon = (s.soon || 0) * 60000;
    var current = null, upcoming = [], i;
    for (i = 0; i < items.length; i++) {
      if (current === null && items[i].start <= now && now < items[i].end) current = items[i];
      if (items[i].start > now) upcoming.push(items[i]);
    }
    var next = upcoming.length ? upcoming[0] : null;
    var hasHours = s.opens !== null && s.opens !== undefined;
    var state, until = null;
    if (current) {
      until = current.end;
      for (i = 0; i < items.length; i++) if (items[i].start <= until && items[i].end > until) until = items[i].end;
      state = "busy";
    } else if (next && now >= next.start - soon) {
      state = "soon"; until = next.start;
    } else if (!hasHours || now < s.opens || now >= s.closes) {
      state = "closed"; until = hasHours && now < s.opens ? s.opens : null;
    } else {
      state = "free"; until = next ? Math.min(next.start, s.closes) : s.closes;
    }
    return { state: state, until: until, current: current, upcoming: upcoming };
  }
  window.roomsyncKioskStatus = computeStatus; // for tests and the curious

  function untilText(until, dayEnd) {
    if (until === null || until === undefined) return "";
    if (until === dayEnd) return "until midnight";
    return "until " + (until > dayEnd ? dayHhmm.format(new Date(until)).replace(",", "") : hm(until));
  }

  function text(el, value) { if (el) el.textContent = value; }

  /* Offline: redraw one status element (the panel's section or a lobby card) from its embedded schedule. */
  function redraw(el, now) {
    var script = el.querySelector("script.kiosk-schedule");
    if (!script) return;
    var s;
    try { s = JSON.parse(script.textContent); } catch (e) { return; }
    var st = computeStatus(now, s);
    el.setAttribute("data-state", st.state);
    el.className = el.className.replace(/\bstate-\w+/, "state-" + st.state);
    text(el.querySelector(".kiosk-state-label"), LABELS[st.state]);
    text(el.querySelector(".kiosk-until"), untilText(st.until, s.dayEnd));
    var current = el.querySelector(".kiosk-current");
    if (current) {
      current.hidden = !st.current;
      current.replaceChildren();
      if (st.current) {
        var title = document.createElement("p");
        title.className = "kiosk-current-title";
        title.textContent = st.current.title;
        var when = document.createElement("p");
        when.className = "kiosk-current-when";
        when.textContent = hm(st.current.start) + "\u2013" + hm(st.current.end) + (st.current.holder ? " \u00b7 " + st.current.holder : "");
        current.append(title, when);
      }
    }
    var list = el.querySelector(".kiosk-next");
    if (list) {
      list.replaceChildren();
      st.upcoming.slice(0, 4).forEach(function (item) {
        var li = document.createElement("li");
        li.textContent = hm(item.start) + "\u2013" + hm(item.end) + " " + item.title + (item.holder ? " " + item.holder : "");
        list.append(li);
      });
      if (!st.upcoming.length) {
        var empty = document.createElement("li");
        empty.className = "kiosk-next-empty";
        empty.textContent = "Nothing else booked today";
        list.append(empty);
      }
    }
  }

  function redrawAll() {
    var now = Date.now();
    document.querySelectorAll(".kiosk-status").forEach(function (el) { redraw(el, now); });
  }

  function setActionsDisabled(disabled) {
    document.querySelectorAll("[data-kiosk-action]").forEach(function (b) { b.disabled = disabled; });
  }

  function goOffline() {
    if (offline) return;
    offline = true;
    // The page is about to be redrawn here, so it no longer is the server's fragment of that ETag: the first
    // poll that gets through must bring a whole fragment, not a 304 that would keep the local drawing.
    etag = null;
    document.body.classList.add("is-offline");
    var badge = document.getElementById("kiosk-offline");
    if (badge) badge.hidden = false;
    setActionsDisabled(true);
    redrawAll();
  }

  function goOnline() {
    if (!offline) return;
    offline = false;
    document.body.classList.remove("is-offline");
    var badge = document.getElementById("kiosk-offline");
    if (badge) badge.hidden = true;
    setActionsDisabled(false);
  }

  function poller() { return document.querySelector("[data-etag][hx-get]"); }

  function rememberEtag() {
    var el = poller();
    if (el) etag = el.getAttribute("data-etag");
  }

  // ---------------------------------------------------------------- requests

  var pending = null; // {elt, identity, pin}: what the dialog collected for the action about to be sent

  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (detail.verb === "get" && detail.elt === poller() && etag) detail.headers["If-None-Match"] = etag;
    if (pending && pending.elt === detail.elt) {
      if (pending.identity !== null) detail.parameters.identity = pending.identity;
      if (pending.pin !== null) detail.parameters.pin = pending.pin;
      pending = null;
    }
  });

  // Back online before an answered poll is swapped in: afterSwap would otherwise redraw the server's fresh
  // fragment with the local rule (and the tablet's own clock) as if still offline.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.status > 0 && xhr.status < 500) goOnline();
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr || xhr.status === 0 || xhr.status >= 500) { goOffline(); return; }
    goOnline();
    var tag = xhr.getResponseHeader("ETag");
    if (tag && (xhr.status === 200 || xhr.status === 304 || xhr.status < 500)) etag = tag;
  });
  document.addEventListener("htmx:sendError", goOffline);
  document.addEventListener("htmx:timeout", goOffline);
  document.addEventListener("htmx:afterSwap", function () {
    if (offline) { setActionsDisabled(true); redrawAll(); }
    var toast = document.getElementById("kiosk-toast");
    if (toast) setTimeout(function () { toast.classList.add("fade"); }, 8000);
  });

  // ---------------------------------------------------------------- the dialog

  var dialog = document.getElementById("kiosk-dialog");
  var confirmRequest = null;

  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.matches || !elt.matches("form[hx-post]")) return;
    if (offline) { event.preventDefault(); return; }
    var identify = elt.getAttribute("data-identify");
    var needsPin = elt.hasAttribute("data-pin");
    if (!dialog || (!identify && !needsPin)) return;
    event.preventDefault();
    var idField = dialog.querySelector('[data-field="identity"]');
    var pinField = dialog.querySelector('[data-field="pin"]');
    idField.hidden = !identify;
    pinField.hidden = !needsPin;
    if (identify) idField.querySelector("label").textContent = identify;
    var idInput = idField.querySelector("input");
    idInput.type = identify === "Email" ? "email" : "text";
    idInput.required = !!identify;
    pinField.querySelector("input").required = needsPin;
    idInput.value = "";
    pinField.querySelector("input").value = "";
    var button = elt.querySelector("button");
    text(dialog.querySelector("h2"), button ? button.getAttribute("aria-label") || button.textContent : "Confirm");
    confirmRequest = { elt: elt, issue: event.detail.issueRequest, identify: !!identify, pin: needsPin };
    dialog.showModal();
    (identify ? idInput : pinField.querySelector("input")).focus();
  });

  if (dialog) {
    dialog.querySelector("form").addEventListener("submit", function () {
      if (!confirmRequest) return;
      var req = confirmRequest;
      confirmRequest = null;
      pending = {
        elt: req.elt,
        identity: req.identify ? dialog.querySelector("#kiosk-identity").value.trim() : null,
        pin: req.pin ? dialog.querySelector("#kiosk-pin").value : null,
      };
      setTimeout(function () { req.issue(true); }, 0);
    });
    dialog.addEventListener("click", function (event) {
      if (event.target.closest("[data-cancel]") || event.target === dialog) { confirmRequest = null; dialog.close(); }
    });
  }

  // ---------------------------------------------------------------- clock and offline ticks

  function tick() {
    var now = new Date();
    text(document.getElementById("kiosk-clock"), hhmm.format(now));
    text(document.getElementById("kiosk-date"), longDate.format(now).replace(",", ""));
  }

  rememberEtag();
  setInterval(tick, 1000);
  setInterval(function () { if (offline) redrawAll(); }, 15000);
  window.addEventListener("offline", goOffline);
})();
