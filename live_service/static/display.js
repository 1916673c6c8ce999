// The waiting-room screen (display.html): the serial now being served, the next few, and
// each slot's, live from the day's event stream. Every text is set with textContent.
"use strict";
(function () {
  var RETRY_MIN_MS = 3000;        // re-create a closed EventSource after this long...
  var RETRY_MAX_MS = 30000;       // ...doubling up to this
  var DAY_CHECK_MS = 30000;       // how often the page looks for a new local day
  var NO_SERIAL = "\u2014";       // an em dash: nobody called yet
  var NEXT_COUNT = 3;             // how many serials "Next" shows

  var match = /^\/display\/([^/]+)\/?$/.exec(location.pathname);
  var hospitalId = match ? decodeURIComponent(match[1]) : "";
  var practitionerId = new URLSearchParams(location.search).get("practitioner_id") || "";

  var el = {
    hospital: document.getElementById("hospital"),
    practitioner: document.getElementById("practitioner"),
    date: document.getElementById("date"),
    clock: document.getElementById("clock"),
    nowServing: document.getElementById("now-serving"),
    nowServingSlot: document.getElementById("now-serving-slot"),
    callingStarts: document.getElementById("calling-starts"),
    nextLine: document.getElementById("next-line"),
    next: document.getElementById("next"),
    slots: document.getElementById("slots"),
    status: document.getElementById("status")
  };

  var timeZone = null;            // the hospital's, once known; else the browser's
  var day = null;                 // the date this page subscribed to (YYYY-MM-DD)
  var shownDay = null;            // the date on screen: the stream's, once it has sent one
  var source = null;
  var retryMs = RETRY_MIN_MS;
  var retryTimer = null;
  var queue = null;               // the last queue answer
  var availability = null;        // the last availability answer
  var cards = new Map();          // slot "HH:MM" -> {card, serial, left}

  function setText(node, text) {
    text = text == null ? "" : String(text);
    if (node.textContent !== text) node.textContent = text;
  }

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

  function showDate(iso) {
    var parts = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
    if (!parts) { setText(el.date, iso); return; }
    // Noon UTC of that date, printed in UTC: the calendar date itself, in any zone.
    var noon = new Date(Date.UTC(+parts[1], +parts[2] - 1, +parts[3], 12));
    setText(el.date, new Intl.DateTimeFormat(undefined, {
      weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: "UTC"
    }).format(noon));
  }

  function tick() {
    setText(el.clock, new Intl.DateTimeFormat(undefined, zoneOptions(
      {hour: "2-digit", minute: "2-digit"})).format(new Date()));
    // At local midnight the page starts over for the new date.
    if (day && today() !== day) location.reload();
    render();  // "Calling starts at ..." becomes "soon" once that time has come
  }

  function setStatus(text, state) {
    setText(el.status, text);
    document.body.setAttribute("data-state", state);
  }

  function card(slot) {
    var entry = cards.get(slot);
    if (entry) return entry;
    entry = {
      card: document.createElement("section"),
      time: document.createElement("div"),
      serial: document.createElement("div"),
      left: document.createElement("div")
    };
    entry.card.className = "slot";
    entry.time.className = "slot-time";
    entry.serial.className = "slot-serial";
    entry.serial.setAttribute("data-slot", slot);
    entry.left.className = "slot-left";
    setText(entry.time, slot);
    setText(entry.serial, NO_SERIAL);
    entry.card.append(entry.time, entry.serial, entry.left);
    cards.set(slot, entry);
    return entry;
  }

  function count(value) {
    return typeof value === "number" && isFinite(value) && value > 0 ? Math.floor(value) : 0;
  }

  function waiting(row) {
    // Booked and not yet called: confirmed or checked in.
    return count(row.booked) - count(row.in_consultation) - count(row.completed) -
      count(row.no_show);
  }

  function queueRows() {
    return (queue && Array.isArray(queue.slots) ? queue.slots : []).filter(function (row) {
      return row && typeof row.slot === "string";
    }).sort(function (a, b) { return a.slot < b.slot ? -1 : a.slot > b.slot ? 1 : 0; });
  }

  // The serials likely called next, from the public queue (which names no one and lists no
  // serials): a slot's serials are 1..booked and a desk calls them in serial order, so those
  // already called are taken to be the one now serving and the lowest others; the rest wait,
  // lowest first. From the slot now serving on (the first slot before any call).
  function waitingSerials(row, current) {
    var booked = count(row.booked);
    var serving = current && row.slot === current.slot && typeof current.serial === "number" &&
      current.serial >= 1 && current.serial <= booked ? current.serial : null;
    // Called (started, done or no-show) besides the one now serving.
    var calledOthers = booked - waiting(row) - (serving === null ? 0 : 1);
    var out = [];
    for (var serial = 1; serial <= booked; serial++) {
      if (serial === serving) continue;
      if (calledOthers > 0) { calledOthers -= 1; continue; }
      out.push(serial);
    }
    return out;
  }

  function nextSerials(rows, current) {
    var out = [];
    var started = !current;
    rows.forEach(function (row) {
      if (!started && row.slot === current.slot) started = true;
      if (!started || out.length >= NEXT_COUNT || waiting(row) <= 0) return;
      waitingSerials(row, current).slice(0, NEXT_COUNT - out.length).forEach(function (serial) {
        out.push({slot: row.slot, serial: serial});
      });
    });
    return out;
  }

  function localTime() {
    var parts = new Intl.DateTimeFormat("en-GB", zoneOptions(
      {hour: "2-digit", minute: "2-digit", hourCycle: "h23"})).formatToParts(new Date());
    var pick = function (type) {
      var part = parts.find(function (p) { return p.type === type; });
      return part ? part.value : "00";
    };
    return pick("hour") + ":" + pick("minute");
  }

  // Before the first call: when calling starts (the first slot with someone waiting).
  function callingStarts(rows) {
    if (!rows.length) return "No consultations today";
    var first = rows.find(function (row) { return waiting(row) > 0; }) || rows[0];
    var ahead = !shownDay || shownDay > today() ||
      (shownDay === today() && first.slot > localTime());
    el.callingStarts.setAttribute("data-starts", first.slot);
    return ahead ? "Calling starts at " + first.slot : "Calling starts soon";
  }

  function renderNext(rows, current) {
    var items = nextSerials(rows, current);
    var nodes = items.map(function (item, index) {
      var node = document.createElement("span");
      node.className = "next-serial";
      node.setAttribute("data-next-slot", item.slot);
      node.textContent = String(item.serial);
      // A slot's time under the first of its serials, unless it is the slot now serving.
      var previous = index > 0 ? items[index - 1].slot : current ? current.slot : null;
      if (item.slot !== previous) {
        var slot = document.createElement("span");
        slot.className = "next-slot";
        slot.textContent = item.slot;
        node.append(slot);
      }
      return node;
    });
    var key = items.map(function (item) { return item.slot + "#" + item.serial; }).join(",") +
      "|" + (current ? current.slot : "");
    if (el.next.getAttribute("data-key") !== key) {
      el.next.replaceChildren.apply(el.next, nodes);
      el.next.setAttribute("data-key", key);
    }
    el.nextLine.hidden = items.length === 0;
  }

  function render() {
    var current = queue && queue.now_serving ? queue.now_serving : null;
    if (queue) {
      setText(el.nowServing, current && current.serial != null ? current.serial : NO_SERIAL);
      setText(el.nowServingSlot, current && current.slot ? "Slot " + current.slot : "");
      var rows = queueRows();
      document.body.setAttribute("data-called", current ? "yes" : "no");
      setText(el.callingStarts, current ? "" : callingStarts(rows));
      renderNext(rows, current);
    } else if (!el.nowServing.textContent) {
      setText(el.nowServing, NO_SERIAL);  // counts but no queue yet: nobody shown as called
    }
    var bySlot = new Map();
    (queue && Array.isArray(queue.slots) ? queue.slots : []).forEach(function (row) {
      if (row && typeof row.slot === "string") bySlot.set(row.slot, row);
    });
    var places = availability && availability.slots && typeof availability.slots === "object"
      ? availability.slots : {};
    var names = new Set(bySlot.keys());
    Object.keys(places).forEach(function (slot) { names.add(slot); });
    var ordered = Array.from(names).sort();
    cards.forEach(function (entry, slot) {
      if (!names.has(slot)) { entry.card.remove(); cards.delete(slot); }
    });
    ordered.forEach(function (slot, index) {
      var entry = card(slot);
      var row = bySlot.get(slot);
      setText(entry.serial, row && row.now_serving != null ? row.now_serving : NO_SERIAL);
      var counts = places[slot];
      var left = counts && typeof counts.available === "number" ? counts.available : null;
      setText(entry.left, left === null ? "" : left === 0 ? "Full" : left + " left");
      entry.card.classList.toggle("current", !!current && current.slot === slot);
      if (el.slots.children[index] !== entry.card) {
        el.slots.insertBefore(entry.card, el.slots.children[index] || null);
      }
    });
  }

  function parse(event) {
    try { return JSON.parse(event.data); } catch (e) { return undefined; }
  }

  function received(data) {
    if (data && typeof data.date === "string" && data.date !== shownDay) {
      shownDay = data.date;
      showDate(shownDay);
    }
  }

  function streamUrl() {
    var url = "/api/live/" + encodeURIComponent(hospitalId) + "/" + encodeURIComponent(day);
    if (practitionerId) url += "?practitioner_id=" + encodeURIComponent(practitionerId);
    return url;
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (source) source.close();
    source = new EventSource(streamUrl());
    source.addEventListener("open", function () {
      retryMs = RETRY_MIN_MS;
      setStatus("", "live");
    });
    source.addEventListener("error", function () {
      setStatus("reconnecting\u2026", "reconnecting");
      // The browser reconnects by itself (with Last-Event-ID) unless the stream is CLOSED,
      // e.g. after an answer that was not an event stream: then make a new one, later.
      if (source.readyState === EventSource.CLOSED && retryTimer === null) {
        retryTimer = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      }
    });
    source.addEventListener("resync", function (event) {
      var data = parse(event);
      if (!data || typeof data !== "object") return;
      // The whole current state; a null part is unknown, so the last one known stays.
      if (data.availability) availability = data.availability;
      if (data.queue) queue = data.queue;
      received(availability);
      received(queue);
      render();
    });
    source.addEventListener("queue", function (event) {
      var data = parse(event);
      if (!data || typeof data !== "object") return;
      queue = data;
      received(queue);
      render();
    });
    source.addEventListener("availability", function (event) {
      var data = parse(event);
      if (!data || typeof data !== "object") return;
      availability = data;
      received(availability);
      render();
    });
  }

  function hospitalKnown(doc) {
    if (doc && typeof doc.timezone === "string") {
      try {
        new Intl.DateTimeFormat("en-CA", {timeZone: doc.timezone});
        timeZone = doc.timezone;
      } catch (e) { /* a zone this browser does not know: its own stands in */ }
    }
    if (doc && typeof doc.hospital_name === "string") {
      setText(el.hospital, doc.hospital_name);
      document.title = "Now serving \u2014 " + doc.hospital_name;
    }
    var doctors = doc && doc.practitioners;
    if (practitionerId && doctors && doctors[practitionerId] &&
        typeof doctors[practitionerId].name === "string") {
      setText(el.practitioner, doctors[practitionerId].name);
    }
  }

  function start() {
    setText(el.hospital, hospitalId);
    setText(el.practitioner, practitionerId);
    if (!hospitalId) { setStatus("No hospital in this address", "error"); return; }
    fetch("/api/dynamic-slots/hospitals/" + encodeURIComponent(hospitalId),
          {headers: {Accept: "application/json"}})
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .catch(function () { return null; })
      .then(function (doc) {
        // Without the hospital's zone the browser's stands in; the stream's dates win.
        if (doc) hospitalKnown(doc);
        day = shownDay = today();
        showDate(day);
        tick();
        setInterval(tick, DAY_CHECK_MS);
        connect();
      });
  }

  start();
})();
