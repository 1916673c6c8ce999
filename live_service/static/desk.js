// The front desk (desk.html): sign-in, the day's appointments of one queue (the hospital's own
// or a doctor's) by slot and serial, the visit steps, "call next", walk-ins, live from the day's
// event stream. It only calls the public API of its own origin:
//   POST /api/auth/login                         sign-in (staff or admin)
//   GET  /api/dynamic-slots/hospitals/{id}       name, time zone, doctors, appointment types
//   GET  /api/appointments?hospital_id&date...   the day's appointments (names, phones)
//   GET  /api/appointments/{id}/queue            the estimated call time of a waiting one
//   POST /api/appointments/{id}/{step}           check-in, start, complete, no-show
//   DELETE /api/appointments/{id}                cancel (a confirmed one)
//   GET  /api/dynamic-slots/available/{id}/{day} the slots with room, for a walk-in
//   POST /api/appointments                       book a walk-in
//   GET  /api/live/{id}/{day}                    the day's events (EventSource)
// The token is kept in sessionStorage (this tab only) and dropped at sign-out or on a 401.
// Every text that comes from the server or a user is set with textContent, never as HTML.
"use strict";
(function () {
  var TOKEN_KEY = "slotbook.desk.token";
  var USER_KEY = "slotbook.desk.user";
  var DESK_ROLES = ["staff", "admin"];
  var RETRY_MIN_MS = 1000;        // re-open a closed event stream after this long...
  var RETRY_MAX_MS = 15000;       // ...doubling up to this
  var DAY_CHECK_MS = 15000;       // how often the page looks for a new day at the hospital
  var ESTIMATE_COUNT = 12;        // the next waiting appointments whose call time is asked
  var ESTIMATE_EVERY_MS = 3000;   // at most this often
  var NOTICE_MS = 6000;
  var ARMED_MS = 5000;            // a cancel needs a second press within this
  var NO_SERIAL = "\u2014";
  var STATUS_TEXT = {
    pending: "Booking\u2026",
    confirmed: "Booked",
    checked_in: "Checked in",
    in_consultation: "In consultation",
    completed: "Done",
    no_show: "No-show",
    cancelled: "Cancelled"
  };
  var STEP_TEXT = {
    "check-in": "Check in",
    start: "Call",
    complete: "Complete",
    "no-show": "No-show",
    cancel: "Cancel"
  };
  var STEP_DONE = {
    "check-in": "checked in",
    start: "called",
    complete: "done",
    "no-show": "marked no-show",
    cancel: "cancelled"
  };
  // What a desk can do to an appointment in each status (the API refuses anything else).
  var ACTIONS = {
    confirmed: ["check-in", "no-show", "cancel"],
    checked_in: ["start", "no-show"],
    in_consultation: ["complete"]
  };

  var match = /^\/desk\/([^/]+)\/?$/.exec(location.pathname);
  var hospitalId = "";
  try { hospitalId = match ? decodeURIComponent(match[1]) : ""; } catch (e) { hospitalId = ""; }
  var queueId = new URLSearchParams(location.search).get("practitioner_id") || "";

  function $(id) { return document.getElementById(id); }
  var el = {
    hospital: $("hospital"), queuePick: $("queue-pick"), queue: $("queue"),
    date: $("date"), clock: $("clock"), connection: $("connection"),
    who: $("who"), user: $("user"), signOut: $("sign-out"),
    message: $("message"), messageText: $("message-text"), messageClose: $("message-close"),
    notice: $("notice"),
    signInView: $("sign-in-view"), signIn: $("sign-in"), email: $("email"),
    password: $("password"), signInButton: $("sign-in-button"),
    signInMessage: $("sign-in-message"),
    deskView: $("desk-view"), roleWarning: $("role-warning"),
    nowServing: $("now-serving"), nowServingSlot: $("now-serving-slot"),
    callNext: $("call-next"),
    walkIn: $("walk-in"), walkInName: $("walk-in-name"), walkInPhone: $("walk-in-phone"),
    walkInDoctorField: $("walk-in-doctor-field"), walkInDoctor: $("walk-in-doctor"),
    walkInTypeField: $("walk-in-type-field"), walkInType: $("walk-in-type"),
    walkInSlot: $("walk-in-slot"), book: $("book"), walkInMessage: $("walk-in-message"),
    slip: $("slip"), slipSerial: $("slip-serial"), slipSlot: $("slip-slot"),
    slipName: $("slip-name"), slipDetail: $("slip-detail"), slipCheckIn: $("slip-check-in"),
    slipPrint: $("slip-print"), slipDone: $("slip-done"),
    slots: $("slots"), empty: $("empty"), showCancelled: $("show-cancelled")
  };

  var token = null;               // the bearer token (also in sessionStorage)
  var user = null;                // {email, role} of the signed-in account
  var hospital = null;            // the hospital's configuration (public)
  var timeZone = null;            // the hospital's, once known; else the browser's
  var day = null;                 // the hospital's today (YYYY-MM-DD)
  var appointments = [];          // the day's appointments of this queue
  var estimates = new Map();      // appointment id -> estimated_call_at (ISO)
  var queueState = null;          // the last queue answer of the stream
  var source = null;              // the EventSource
  var retryMs = RETRY_MIN_MS;
  var retryTimer = null;
  var noticeTimer = null;
  var walkInKey = null;           // the Idempotency-Key of the walk-in being booked
  var slipAppointment = null;     // the walk-in the slip shows

  // ------------------------------------------------------------------ small helpers

  function setText(node, text) {
    text = text == null ? "" : String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  function enc(value) { return encodeURIComponent(value); }

  function zoneOptions(extra) {
    var options = Object.assign({}, extra);
    if (timeZone) options.timeZone = timeZone;
    return options;
  }

  function today() {
    // en-CA formats a date as YYYY-MM-DD.
    return new Intl.DateTimeFormat("en-CA", zoneOptions(
      {year: "numeric", month: "2-digit", day: "2-digit"})).format(new Date());
  }

  function clockTime(iso) {
    var when = new Date(iso);
    if (typeof iso !== "string" || isNaN(when.getTime())) return "";
    return new Intl.DateTimeFormat(undefined, zoneOptions(
      {hour: "numeric", minute: "2-digit"})).format(when);
  }

  function wallTime(hhmm) {
    var parts = /^(\d{2}):(\d{2})$/.exec(hhmm || "");
    if (!parts) return hhmm || "";
    return new Intl.DateTimeFormat(undefined, {hour: "numeric", minute: "2-digit",
      timeZone: "UTC"}).format(new Date(Date.UTC(2000, 0, 1, +parts[1], +parts[2])));
  }

  function showDate(iso) {
    var parts = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
    if (!parts) { setText(el.date, iso); return; }
    var noon = new Date(Date.UTC(+parts[1], +parts[2] - 1, +parts[3], 12));
    setText(el.date, new Intl.DateTimeFormat(undefined, {
      weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: "UTC"
    }).format(noon));
  }

  function text(value) { return typeof value === "string" ? value : ""; }

  function slotOf(appointment) {
    var slot = appointment && appointment.slot;
    return slot && typeof slot === "object" ? slot : {};
  }

  function doctorName(appointment) {
    var doctor = appointment.practitioner;
    return doctor && typeof doctor === "object" ? text(doctor.name) : "";
  }

  function typeName(code) {
    var types = hospital && hospital.appointment_types;
    var kind = code && types && typeof types === "object" ? types[code] : null;
    return kind && typeof kind.name === "string" ? kind.name : text(code);
  }

  function bySlotAndSerial(a, b) {
    var sa = text(slotOf(a).start), sb = text(slotOf(b).start);
    if (sa !== sb) return sa < sb ? -1 : 1;
    var na = typeof a.serial === "number" ? a.serial : Infinity;
    var nb = typeof b.serial === "number" ? b.serial : Infinity;
    if (na !== nb) return na - nb;
    return text(a.created_at) < text(b.created_at) ? -1 : 1;
  }

  function randomKey() {
    // crypto.randomUUID needs a secure context; getRandomValues does not.
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "desk-" + Array.from(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  // ------------------------------------------------------------------ messages

  function showMessage(error) {
    setText(el.messageText, error.message);
    el.message.setAttribute("data-error", error.code || "");
    el.message.hidden = false;
  }

  function clearMessage() {
    el.message.hidden = true;
    setText(el.messageText, "");
    el.message.removeAttribute("data-error");
  }

  function notice(what) {
    setText(el.notice, what);
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { setText(el.notice, ""); }, NOTICE_MS);
  }

  function setConnection(state) {
    document.body.setAttribute("data-connection", state);
    setText(el.connection, state === "live" ? "Live" : state === "offline"
      ? "Offline \u2014 reconnecting\u2026" : "Connecting\u2026");
  }

  // ------------------------------------------------------------------ the API

  function ApiError(status, body, offline) {
    this.status = status;
    this.code = body && typeof body.error === "string" ? body.error
      : offline ? "offline" : "http_" + status;
    this.message = body && typeof body.message === "string" ? body.message
      : offline ? "The server cannot be reached: check the connection, then try again."
      : "The request failed (HTTP " + status + ").";
  }

  function localError(code, message) { return {code: code, message: message, status: -1}; }

  // One request to this origin's API; resolves with the JSON answer, rejects with an ApiError.
  // A 401 to a request made with the current token ends the session.
  function api(method, path, body, headers) {
    var sent = token;
    var all = Object.assign({Accept: "application/json"}, headers || {});
    if (sent) all.Authorization = "Bearer " + sent;
    var init = {method: method, headers: all, cache: "no-store", credentials: "omit",
      redirect: "error"};
    if (body !== undefined) {
      all["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (raw) {
        var data = null;
        try { data = raw ? JSON.parse(raw) : null; } catch (e) { data = null; }
        if (resp.status === 401 && sent && sent === token) {
          signOut("Your session has ended: sign in again.");
        }
        if (!resp.ok) throw new ApiError(resp.status, data, false);
        return data;
      });
    }, function () {
      setConnection("offline");
      throw new ApiError(0, null, true);
    });
  }

  // A failure the person at the desk must see (a 401 already took them to the sign-in).
  function failed(error) {
    if (error && error.status !== 401) showMessage(error);
  }

  // ------------------------------------------------------------------ session

  function stored() {
    try {
      var saved = sessionStorage.getItem(TOKEN_KEY);
      var who = JSON.parse(sessionStorage.getItem(USER_KEY) || "null");
      return saved ? {token: saved, user: who && typeof who === "object" ? who : {}} : null;
    } catch (e) {
      return null;
    }
  }

  function keep(newToken, who) {
    try {
      sessionStorage.setItem(TOKEN_KEY, newToken);
      sessionStorage.setItem(USER_KEY, JSON.stringify(who));
    } catch (e) { /* storage refused: this page keeps the token in memory only */ }
  }

  function forget() {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(USER_KEY);
    } catch (e) { /* nothing kept */ }
  }

  function showView(view) {
    document.body.setAttribute("data-view", view);
    el.signInView.hidden = view !== "sign-in";
    el.deskView.hidden = view !== "desk";
    el.who.hidden = view !== "desk";
  }

  function signedIn(newToken, who) {
    token = newToken;
    user = {email: text(who.email), role: text(who.role)};
    setText(el.user, user.email + (user.role ? " (" + user.role + ")" : ""));
    var atDesk = DESK_ROLES.indexOf(user.role) >= 0;
    el.roleWarning.hidden = atDesk;
    setText(el.roleWarning, atDesk ? "" : "Signed in with a " + (user.role || "non-staff") +
      " account: the desk's actions need a staff or admin account, and the server refuses them.");
    clearMessage();
    showView("desk");
    connect();
    refresh();
    loadSlots();
  }

  function signOut(why) {
    forget();
    token = null;
    user = null;
    if (source) { source.close(); source = null; }
    clearTimeout(retryTimer);
    retryTimer = null;
    // Nobody's name or phone stays on the screen.
    appointments = [];
    estimates.clear();
    render();
    hideSlip();
    el.walkIn.reset();
    setText(el.walkInMessage, "");
    clearMessage();
    setText(el.signInMessage, why || "");
    el.signInMessage.removeAttribute("data-error");
    showView("sign-in");
    el.email.focus();
  }

  el.signIn.addEventListener("submit", function (event) {
    event.preventDefault();
    var email = el.email.value.trim();
    var password = el.password.value;
    if (!email || !password) {
      setText(el.signInMessage, "Enter the email and password of a staff or admin account.");
      return;
    }
    el.signInButton.disabled = true;
    setText(el.signInMessage, "");
    token = null;
    api("POST", "/api/auth/login", {email: email, password: password}).then(function (answer) {
      if (!answer || typeof answer.access_token !== "string") {
        throw new ApiError(502, null, false);
      }
      var who = answer.user && typeof answer.user === "object" ? answer.user : {};
      var kept = {email: text(who.email) || email, role: text(who.role)};
      keep(answer.access_token, kept);
      el.password.value = "";
      signedIn(answer.access_token, kept);
    }).catch(function (error) {
      setText(el.signInMessage, error.message);
      el.signInMessage.setAttribute("data-error", error.code || "");
    }).then(function () { el.signInButton.disabled = false; });
  });

  el.signOut.addEventListener("click", function () { signOut("Signed out."); });

  // ------------------------------------------------------------------ the hospital, the queue

  function doctors() {
    var all = hospital && hospital.practitioners;
    if (!all || typeof all !== "object") return [];
    return Object.keys(all).sort().map(function (id) {
      var doc = all[id] && typeof all[id] === "object" ? all[id] : {};
      return {id: id, name: text(doc.name) || id, active: doc.active !== false};
    });
  }

  function option(value, label, selected) {
    var node = document.createElement("option");
    node.value = value;
    node.textContent = label;
    if (selected) node.defaultSelected = node.selected = true;
    return node;
  }

  function fillQueues() {
    var list = doctors();
    el.queuePick.hidden = list.length === 0 && !queueId;
    var options = [option("", "Clinic (no doctor)", queueId === "")];
    list.forEach(function (doctor) {
      options.push(option(doctor.id, doctor.name + (doctor.active ? "" : " (inactive)"),
        doctor.id === queueId));
    });
    if (queueId && !list.some(function (d) { return d.id === queueId; })) {
      options.push(option(queueId, queueId, true));
    }
    el.queue.replaceChildren.apply(el.queue, options);
    // The walk-in's doctor: the clinic or an active doctor; the desk's queue by default.
    var bookable = [option("", "No doctor (clinic)", queueId === "")];
    list.filter(function (d) { return d.active; }).forEach(function (doctor) {
      bookable.push(option(doctor.id, doctor.name, doctor.id === queueId));
    });
    el.walkInDoctor.replaceChildren.apply(el.walkInDoctor, bookable);
    el.walkInDoctorField.hidden = list.length === 0;
    var types = hospital && hospital.appointment_types;
    var codes = types && typeof types === "object" ? Object.keys(types).sort() : [];
    var preferred = text(hospital && hospital.default_appointment_type);
    el.walkInType.replaceChildren.apply(el.walkInType, codes.map(function (code) {
      return option(code, typeName(code), code === preferred);
    }));
    el.walkInTypeField.hidden = codes.length === 0;
  }

  function showHospital() {
    var name = text(hospital && hospital.hospital_name) || hospitalId;
    setText(el.hospital, name);
    document.title = "Front desk \u2014 " + name;
  }

  el.queue.addEventListener("change", function () {
    queueId = el.queue.value;
    var url = location.pathname + (queueId ? "?practitioner_id=" + enc(queueId) : "");
    history.replaceState(null, "", url);
    appointments = [];
    estimates.clear();
    queueState = null;
    showServing();
    render();
    if (el.walkInDoctor.querySelector("option[value='" + CSS.escape(queueId) + "']")) {
      el.walkInDoctor.value = queueId;
    }
    if (token) {
      connect();
      refresh();
      loadSlots();
    }
  });

  // ------------------------------------------------------------------ the day's stream

  function streamUrl() {
    var url = "/api/live/" + enc(hospitalId) + "/" + enc(day);
    return queueId ? url + "?practitioner_id=" + enc(queueId) : url;
  }

  function parse(event) {
    try { return JSON.parse(event.data); } catch (e) { return null; }
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (source) source.close();
    var mine = source = new EventSource(streamUrl());
    setConnection("connecting");
    mine.addEventListener("open", function () {
      if (source !== mine) return;
      retryMs = RETRY_MIN_MS;
      setConnection("live");
    });
    mine.addEventListener("error", function () {
      if (source !== mine) return;
      setConnection("offline");
      // The browser reconnects by itself (with Last-Event-ID) unless the stream is CLOSED
      // (an answer that was not a stream: the service down, a 429): then a new one, later.
      if (mine.readyState === EventSource.CLOSED && retryTimer === null) {
        retryTimer = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    });
    ["resync", "availability", "queue"].forEach(function (name) {
      mine.addEventListener(name, function (event) {
        if (source !== mine) return;
        var data = parse(event);
        if (name === "resync" && data && data.queue) queueState = data.queue;
        if (name === "queue" && data) queueState = data;
        showServing();
        // Events carry counts, never names: read the day's appointments again.
        refreshSoon();
        if (name !== "queue") slotsSoon();
      });
    });
  }

  function showServing() {
    var now = queueState && queueState.now_serving;
    setText(el.nowServing, now && now.serial != null ? now.serial : NO_SERIAL);
    setText(el.nowServingSlot, now && now.slot ? wallTime(now.slot) : "");
  }

  // ------------------------------------------------------------------ the day's appointments

  var loading = null;             // the read under way
  var again = false;              // something changed during it: read once more after it
  var refreshTimer = null;

  function refreshSoon() {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(function () { refreshTimer = null; refresh(); }, 80);
  }

  function inQueue(appointment) {
    if (!appointment || appointment.hospital_id !== hospitalId || appointment.date !== day) {
      return false;
    }
    var doctor = appointment.practitioner;
    var id = doctor && typeof doctor === "object" ? text(doctor.practitioner_id) : "";
    return id === queueId;
  }

  function readDay() {
    var base = "/api/appointments?hospital_id=" + enc(hospitalId) + "&date=" + enc(day) +
      (queueId ? "&practitioner_id=" + enc(queueId) : "") + "&per_page=500";
    var found = [];
    function page(number) {
      return api("GET", base + "&page=" + number).then(function (answer) {
        var items = answer && Array.isArray(answer.appointments) ? answer.appointments : [];
        found = found.concat(items);
        var total = answer && typeof answer.total === "number" ? answer.total : 0;
        return items.length && found.length < total && number < 20 ? page(number + 1) : found;
      });
    }
    return page(1);
  }

  // Read the day's appointments (one read at a time; changes during it: one more read).
  function refresh() {
    if (!token || !day) return Promise.resolve();
    if (loading) { again = true; return loading; }
    var forQueue = queueId, forDay = day;
    loading = readDay().then(function (found) {
      if (forQueue !== queueId || forDay !== day || !token) return;
      // (A patient's token lists its own appointments whatever the filters say.)
      appointments = found.filter(inQueue);
      if (el.message.getAttribute("data-error") === "offline") clearMessage();
      render();
      estimateSoon();
      if (source && source.readyState === EventSource.OPEN) setConnection("live");
    }, failed).then(function () {
      loading = null;
      if (again) {
        again = false;
        return refresh();
      }
    });
    return loading;
  }

  function replaced(answer) {
    if (!answer || typeof answer.appointment_id !== "string") return;
    var found = false;
    appointments = appointments.map(function (a) {
      if (a.appointment_id !== answer.appointment_id) return a;
      found = true;
      return answer;
    });
    if (!found && inQueue(answer)) appointments.push(answer);
    render();
  }

  // ------------------------------------------------------------------ rendering

  var groups = new Map();         // slot start -> {section, title, info, list}
  var rows = new Map();           // appointment id -> {li, ..., status}

  function counts(list) {
    var out = {waiting: 0, checked_in: 0, in_consultation: 0, completed: 0, no_show: 0};
    list.forEach(function (a) {
      if (a.status === "confirmed" || a.status === "checked_in") out.waiting += 1;
      if (a.status in out) out[a.status] += 1;
    });
    return out;
  }

  function group(start, slot) {
    var entry = groups.get(start);
    if (!entry) {
      entry = {
        section: document.createElement("section"),
        title: document.createElement("h3"),
        time: document.createElement("span"),
        info: document.createElement("span"),
        list: document.createElement("ol")
      };
      entry.section.className = "slot";
      entry.section.setAttribute("data-slot", start);
      entry.time.className = "slot-time";
      entry.info.className = "slot-info";
      entry.list.className = "rows";
      entry.title.append(entry.time, entry.info);
      entry.section.append(entry.title, entry.list);
      groups.set(start, entry);
    }
    setText(entry.time, text(slot.display) || wallTime(start));
    return entry;
  }

  function row(appointment) {
    var id = appointment.appointment_id;
    var entry = rows.get(id);
    if (!entry) {
      entry = {li: document.createElement("li"), shown: null};
      ["serial", "who", "name", "phone", "meta", "state", "actions"].forEach(function (part) {
        entry[part] = document.createElement("div");
        entry[part].className = "row-" + part;
      });
      ["status", "eta"].forEach(function (part) {
        entry[part] = document.createElement("span");
        entry[part].className = "row-" + part;
      });
      entry.li.className = "row";
      entry.li.tabIndex = -1;
      entry.li.setAttribute("data-id", id);
      entry.who.append(entry.name, entry.phone);
      entry.state.append(entry.status, entry.eta);
      entry.li.append(entry.serial, entry.who, entry.meta, entry.state, entry.actions);
      rows.set(id, entry);
    }
    return entry;
  }

  function etaText(appointment) {
    if (appointment.status === "confirmed" || appointment.status === "checked_in") {
      var at = estimates.get(appointment.appointment_id);
      return at ? "Call ~" + clockTime(at) : "";
    }
    if (appointment.status === "in_consultation") {
      return appointment.started_at ? "Since " + clockTime(appointment.started_at) : "";
    }
    if (appointment.status === "completed" && appointment.completed_at) {
      return "At " + clockTime(appointment.completed_at);
    }
    return "";
  }

  function actionButtons(entry, appointment) {
    var focused = entry.actions.contains(document.activeElement);
    var buttons = (ACTIONS[appointment.status] || []).map(function (name) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = STEP_TEXT[name];
      button.setAttribute("data-step", name);
      if (name === "cancel" || name === "no-show") button.className = "danger";
      button.addEventListener("click", function () { press(appointment.appointment_id, name, button); });
      return button;
    });
    entry.actions.replaceChildren.apply(entry.actions, buttons);
    if (focused) (buttons[0] || entry.li).focus();
  }

  function fillRow(entry, appointment) {
    var li = entry.li;
    li.setAttribute("data-status", appointment.status);
    li.setAttribute("data-serial", appointment.serial == null ? "" : String(appointment.serial));
    setText(entry.serial, appointment.serial == null ? NO_SERIAL : appointment.serial);
    var patient = appointment.patient && typeof appointment.patient === "object"
      ? appointment.patient : {};
    setText(entry.name, text(patient.name));
    setText(entry.phone, text(patient.phone));
    setText(entry.meta, [doctorName(appointment), typeName(appointment.appointment_type)]
      .filter(Boolean).join("\n"));
    setText(entry.status, STATUS_TEXT[appointment.status] || text(appointment.status));
    setText(entry.eta, etaText(appointment));
    if (entry.shown !== appointment.status) {
      entry.shown = appointment.status;
      actionButtons(entry, appointment);
    }
    li.setAttribute("aria-label", "Serial " + (appointment.serial == null ? "" : appointment.serial) +
      ", " + text(patient.name) + ", " + (STATUS_TEXT[appointment.status] || ""));
  }

  function render() {
    var showCancelled = el.showCancelled.checked;
    var shown = appointments.filter(function (a) {
      return a && typeof a.appointment_id === "string" && (showCancelled || a.status !== "cancelled");
    }).sort(bySlotAndSerial);
    var tally = counts(appointments);
    Object.keys(tally).forEach(function (name) {
      setText(document.querySelector("[data-count='" + name + "']"), tally[name]);
    });
    el.callNext.disabled = !token;
    var starts = [];
    var bySlot = new Map();
    shown.forEach(function (a) {
      var start = text(slotOf(a).start);
      if (!bySlot.has(start)) { bySlot.set(start, []); starts.push(start); }
      bySlot.get(start).push(a);
    });
    var keepRows = new Set(shown.map(function (a) { return a.appointment_id; }));
    rows.forEach(function (entry, id) {
      if (!keepRows.has(id)) {
        if (entry.li.contains(document.activeElement)) el.callNext.focus();
        entry.li.remove();
        rows.delete(id);
      }
    });
    groups.forEach(function (entry, start) {
      if (!bySlot.has(start)) { entry.section.remove(); groups.delete(start); }
    });
    var serving = queueState && queueState.now_serving;
    starts.forEach(function (start, index) {
      var list = bySlot.get(start);
      var entry = group(start, slotOf(list[0]));
      var active = list.filter(function (a) { return a.status !== "cancelled"; });
      var slotTally = counts(active);
      var info = active.length + " booked \u00b7 " + slotTally.waiting + " waiting";
      if (serving && serving.slot === start) info += " \u00b7 serving " + serving.serial;
      setText(entry.info, info);
      if (el.slots.children[index] !== entry.section) {
        el.slots.insertBefore(entry.section, el.slots.children[index] || null);
      }
      list.forEach(function (appointment, position) {
        var item = row(appointment);
        fillRow(item, appointment);
        if (entry.list.children[position] !== item.li) {
          var had = item.li.contains(document.activeElement) ? document.activeElement : null;
          entry.list.insertBefore(item.li, entry.list.children[position] || null);
          if (had) had.focus();
        }
      });
    });
    el.empty.hidden = !token || shown.length > 0;
  }

  el.showCancelled.addEventListener("change", render);

  // ------------------------------------------------------------------ estimated call times

  var estimating = false;
  var estimateAgain = false;
  var estimateTimer = null;
  var lastEstimate = 0;

  function estimateSoon() {
    if (estimateTimer !== null) return;
    var wait = Math.max(300, ESTIMATE_EVERY_MS - (Date.now() - lastEstimate));
    estimateTimer = setTimeout(function () { estimateTimer = null; estimate(); }, wait);
  }

  // The call time of the next ESTIMATE_COUNT waiting appointments (one request each, at
  // most three at once): GET /api/appointments/{id}/queue.
  function estimate() {
    if (!token) return;
    if (estimating) { estimateAgain = true; return; }
    estimating = true;
    lastEstimate = Date.now();
    var waiting = appointments.filter(function (a) {
      return a.status === "confirmed" || a.status === "checked_in";
    }).sort(bySlotAndSerial).slice(0, ESTIMATE_COUNT);
    var ids = waiting.map(function (a) { return a.appointment_id; });
    estimates.forEach(function (value, id) { if (ids.indexOf(id) < 0) estimates.delete(id); });
    var next = 0;
    function worker() {
      if (next >= ids.length || !token) return Promise.resolve();
      var id = ids[next++];
      return api("GET", "/api/appointments/" + enc(id) + "/queue").then(function (answer) {
        if (answer && typeof answer.estimated_call_at === "string") {
          estimates.set(id, answer.estimated_call_at);
        } else {
          estimates.delete(id);
        }
      }, function () { estimates.delete(id); }).then(worker);
    }
    Promise.all([worker(), worker(), worker()]).then(function () {
      estimating = false;
      render();
      if (estimateAgain) { estimateAgain = false; estimateSoon(); }
    });
  }

  // ------------------------------------------------------------------ the visit steps

  function find(id) {
    return appointments.find(function (a) { return a.appointment_id === id; });
  }

  function describe(appointment) {
    var patient = appointment && appointment.patient;
    var name = patient && typeof patient.name === "string" ? patient.name : "";
    return "Serial " + (appointment && appointment.serial != null ? appointment.serial : "?") +
      (name ? " (" + name + ")" : "");
  }

  function request(id, name) {
    if (name === "cancel") return api("DELETE", "/api/appointments/" + enc(id));
    return api("POST", "/api/appointments/" + enc(id) + "/" + name);
  }

  function press(id, name, button) {
    if (name === "cancel" && !button.classList.contains("armed")) {
      // A cancel takes a second press: it cannot be undone.
      button.classList.add("armed");
      button.textContent = "Confirm cancel";
      setTimeout(function () {
        button.classList.remove("armed");
        button.textContent = STEP_TEXT.cancel;
      }, ARMED_MS);
      return;
    }
    button.disabled = true;
    request(id, name).then(function (answer) {
      clearMessage();
      replaced(answer);
      notice(describe(answer || find(id)) + " " + STEP_DONE[name] + ".");
      if (name === "cancel") slotsSoon();
    }, failed).then(function () {
      button.disabled = false;
      refreshSoon();
    });
  }

  var calling = false;             // a call next under way (a press meanwhile is ignored)

  // Call next: start the first checked-in appointment in slot and serial order. Another desk
  // may have called it a moment before (409): read the day again and call the next one.
  function callNext(attempt) {
    attempt = attempt || 0;
    if (!token || (calling && !attempt)) return Promise.resolve();
    var next = appointments.filter(function (a) { return a.status === "checked_in"; })
      .sort(bySlotAndSerial)[0];
    if (!next) {
      showMessage(localError("nobody_checked_in",
        "Nobody is checked in: check a patient in, then call next."));
      return Promise.resolve();
    }
    el.callNext.disabled = true;
    calling = true;
    return request(next.appointment_id, "start").then(function (answer) {
      clearMessage();
      replaced(answer);
      notice("Calling " + describe(answer || next) + ".");
    }, function (error) {
      if (error.status === 409 && error.code === "invalid_transition" && attempt < 3) {
        return refresh().then(function () { return callNext(attempt + 1); });
      }
      failed(error);
    }).then(function () {
      if (!attempt) calling = false;
      el.callNext.disabled = !token;
      refreshSoon();
    });
  }

  el.callNext.addEventListener("click", function () { callNext(); });

  // ------------------------------------------------------------------ walk-ins

  var slotsTimer = null;
  var slotsRead = 0;              // the latest read of the walk-in's slots (older ones lose)

  function slotsSoon() {
    if (slotsTimer !== null) return;
    slotsTimer = setTimeout(function () { slotsTimer = null; loadSlots(); }, 250);
  }

  function slotsUrl() {
    var query = [];
    if (el.walkInDoctor.value) query.push("practitioner_id=" + enc(el.walkInDoctor.value));
    if (!el.walkInTypeField.hidden && el.walkInType.value) {
      query.push("appointment_type=" + enc(el.walkInType.value));
    }
    return "/api/dynamic-slots/available/" + enc(hospitalId) + "/" + enc(day) +
      (query.length ? "?" + query.join("&") : "");
  }

  // The walk-in's slots: only those that take a booking now (not started, with room for the
  // type's places).
  function loadSlots() {
    if (!token || !day) return;
    var mine = ++slotsRead;
    api("GET", slotsUrl()).then(function (answer) {
      if (mine !== slotsRead) return;
      var slots = answer && Array.isArray(answer.slots) ? answer.slots : [];
      var chosen = el.walkInSlot.value;
      var open = slots.filter(function (s) {
        return s && s.bookable === true && s.fits !== false &&
          (typeof s.available !== "number" || s.available > 0);
      });
      var options = open.map(function (s) {
        var left = typeof s.available === "number" ? " \u00b7 " + s.available + " left" : "";
        return option(text(s.start), (text(s.display) || wallTime(s.start)) + left,
          s.start === chosen);
      });
      if (!options.length) options = [option("", "No slot with room today", true)];
      el.walkInSlot.replaceChildren.apply(el.walkInSlot, options);
      el.walkInSlot.disabled = !open.length;
      el.book.disabled = !open.length;
    }, function (error) {
      if (mine === slotsRead && error.status !== 401) {
        setText(el.walkInMessage, error.message);
      }
    });
  }

  function walkInChanged() {
    walkInKey = null;             // a different request: a new Idempotency-Key
    setText(el.walkInMessage, "");
  }

  [el.walkInName, el.walkInPhone, el.walkInSlot].forEach(function (field) {
    field.addEventListener("input", walkInChanged);
  });
  [el.walkInDoctor, el.walkInType].forEach(function (field) {
    field.addEventListener("change", function () { walkInChanged(); loadSlots(); });
  });

  el.walkIn.addEventListener("submit", function (event) {
    event.preventDefault();
    var name = el.walkInName.value.trim();
    var phone = el.walkInPhone.value.trim();
    if (!name) {
      setText(el.walkInMessage, "Enter the patient's name.");
      el.walkInName.focus();
      return;
    }
    if (!/^\+?[0-9]{7,15}$/.test(phone)) {
      setText(el.walkInMessage, "Enter a phone number: 7 to 15 digits, an optional + first.");
      el.walkInPhone.focus();
      return;
    }
    if (!el.walkInSlot.value) {
      setText(el.walkInMessage, "Choose a slot with room.");
      return;
    }
    var body = {
      hospital_id: hospitalId,
      date: day,
      slot: el.walkInSlot.value,
      patient: {name: name, phone: phone}
    };
    if (el.walkInDoctor.value) body.practitioner_id = el.walkInDoctor.value;
    if (!el.walkInTypeField.hidden && el.walkInType.value) {
      body.appointment_type = el.walkInType.value;
    }
    // The same key until the form changes: a press again after a lost answer books once.
    walkInKey = walkInKey || randomKey();
    el.book.disabled = true;
    setText(el.walkInMessage, "");
    api("POST", "/api/appointments", body, {"Idempotency-Key": walkInKey}).then(function (answer) {
      walkInKey = null;
      el.walkIn.reset();
      fillQueues();
      showSlip(answer);
      replaced(answer);
      notice(describe(answer) + " booked.");
    }, function (error) {
      if (error.status !== 401) setText(el.walkInMessage, error.message);
      el.walkInMessage.setAttribute("data-error", error.code || "");
    }).then(function () {
      el.book.disabled = false;
      loadSlots();
      refreshSoon();
    });
  });

  function showSlip(appointment) {
    slipAppointment = appointment;
    var slot = slotOf(appointment);
    setText(el.slipSerial, appointment.serial == null ? NO_SERIAL : appointment.serial);
    setText(el.slipSlot, text(slot.display) || wallTime(slot.start));
    setText(el.slipName, text(appointment.patient && appointment.patient.name));
    setText(el.slipDetail, [doctorName(appointment), typeName(appointment.appointment_type)]
      .filter(Boolean).join(" \u00b7 "));
    el.slipCheckIn.disabled = false;
    el.slipCheckIn.hidden = false;
    el.walkIn.hidden = true;
    el.slip.hidden = false;
    el.slipCheckIn.focus();
  }

  function hideSlip() {
    slipAppointment = null;
    el.slip.hidden = true;
    el.walkIn.hidden = false;
  }

  el.slipDone.addEventListener("click", function () {
    hideSlip();
    el.walkInName.focus();
  });
  el.slipPrint.addEventListener("click", function () { window.print(); });
  el.slipCheckIn.addEventListener("click", function () {
    if (!slipAppointment) return;
    var id = slipAppointment.appointment_id;
    el.slipCheckIn.disabled = true;
    request(id, "check-in").then(function (answer) {
      clearMessage();
      replaced(answer);
      notice(describe(answer) + " checked in.");
      el.slipCheckIn.hidden = true;
      el.slipDone.focus();
    }, function (error) {
      el.slipCheckIn.disabled = false;
      failed(error);
    }).then(refreshSoon);
  });

  // ------------------------------------------------------------------ keys, clock, start

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !el.message.hidden) {
      clearMessage();
      return;
    }
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (document.body.getAttribute("data-view") !== "desk") return;
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" ||
        (target && target.isContentEditable)) {
      return;
    }
    if (event.key === "n" || event.key === "N") {
      event.preventDefault();
      if (!event.repeat && !el.callNext.disabled) callNext();
    } else if (event.key === "w" || event.key === "W") {
      event.preventDefault();
      if (!el.slip.hidden) hideSlip();
      el.walkInName.focus();
    }
  });

  el.messageClose.addEventListener("click", clearMessage);

  window.addEventListener("offline", function () { setConnection("offline"); });
  window.addEventListener("online", function () { if (token) { connect(); refresh(); } });

  function tick() {
    setText(el.clock, new Intl.DateTimeFormat(undefined, zoneOptions(
      {hour: "numeric", minute: "2-digit"})).format(new Date()));
    var now = today();
    if (day && now !== day) {
      // A new day at the hospital: its appointments, its stream.
      day = now;
      showDate(day);
      appointments = [];
      estimates.clear();
      queueState = null;
      showServing();
      render();
      if (token) { connect(); refresh(); loadSlots(); }
    }
  }

  function begin() {
    showHospital();
    fillQueues();
    day = today();
    showDate(day);
    tick();
    setInterval(tick, DAY_CHECK_MS);
    var saved = stored();
    if (saved) {
      signedIn(saved.token, saved.user);
    } else {
      setConnection("connecting");
      showView("sign-in");
      el.email.focus();
    }
  }

  function start() {
    setText(el.hospital, hospitalId);
    if (!hospitalId) {
      showMessage(localError("no_hospital", "No hospital in this address."));
      return;
    }
    var tries = 0;
    (function load() {
      fetch("/api/dynamic-slots/hospitals/" + enc(hospitalId),
        {headers: {Accept: "application/json"}, cache: "no-store", credentials: "omit"})
        .then(function (resp) {
          if (resp.status === 404) throw new ApiError(404, null, false);
          if (!resp.ok) throw new ApiError(resp.status, null, true);
          return resp.json();
        })
        .then(function (doc) {
          hospital = doc && typeof doc === "object" ? doc : {};
          if (typeof hospital.timezone === "string") {
            try {
              new Intl.DateTimeFormat("en-CA", {timeZone: hospital.timezone});
              timeZone = hospital.timezone;
            } catch (e) { /* a zone this browser does not know: its own stands in */ }
          }
          clearMessage();
          begin();
        }, function (error) {
          if (error.status === 404) {
            showMessage(localError("hospital_not_found", "No hospital " + hospitalId + "."));
            return;
          }
          // The server cannot be reached yet: try again, more slowly each time.
          setConnection("offline");
          showMessage(localError("offline", "The server cannot be reached: trying again\u2026"));
          tries += 1;
          setTimeout(load, Math.min(RETRY_MIN_MS * Math.pow(2, tries), RETRY_MAX_MS));
        });
    })();
  }

  start();
})();
