// The meter on the screen: keys go to the server's meter; the LCD is polled from it.
(function () {
  "use strict";
  var root, meter, csrf, busy = Promise.resolve();

  function show(s) {
    if (!s || s.error) { if (s && s.error) document.getElementById("result").textContent = s.error; return; }
    var d = s.display;
    var lcd = document.getElementById("lcd");
    lcd.classList.toggle("off", !d.powered);
    document.getElementById("lcd-text").textContent = d.text;
    document.getElementById("lcd-meaning").textContent = d.meaning || "";
    lcd.classList.toggle("typing", !!d.counter);
    document.getElementById("lcd-count").textContent = d.counter ? String(d.counter) : "";
    [["credit", d.credit], ["relay", d.relay], ["alarm", d.alarm], ["tamper", d.tamper]].forEach(function (p) {
      document.getElementById("sym-" + p[0]).classList.toggle("on", !!p[1]);
    });
    document.getElementById("led-relay").classList.toggle("on", s.relay === "closed");
    document.getElementById("led-alarm").classList.toggle("on", !!d.alarm);
    document.getElementById("credit").textContent = s.registers.electricity + " kWh";
    document.getElementById("relay").textContent = s.relay;
    document.getElementById("offset").textContent = s.offset ? "+" + Math.round(s.offset) + " s" : "now";
    if (s.result) document.getElementById("result").textContent = s.result.display + " (" + s.result.result + ")";
  }

  function post(path, data) {
    var body = new URLSearchParams(data);
    body.set("csrf", csrf); body.set("meter", meter);
    busy = busy.then(function () {
      return fetch(path, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) { return r.json(); }).then(show).catch(function () {});
    });
    return busy;
  }

  function poll() {
    busy.then(function () {
      return fetch("/simulator/state?meter=" + encodeURIComponent(meter), { credentials: "same-origin" })
        .then(function (r) { return r.json(); }).then(show).catch(function () {});
    }).then(function () { setTimeout(poll, 500); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = document.getElementById("sim");
    if (!root) return;
    meter = root.dataset.meter; csrf = root.dataset.csrf;
    root.addEventListener("click", function (ev) {
      var k = ev.target.closest("[data-key]");
      if (k) { post("/simulator/press", { key: k.dataset.key }); return; }
      var a = ev.target.closest("[data-advance]");
      if (a) { post("/simulator/advance", { seconds: a.dataset.advance }); return; }
      if (ev.target.closest("[data-reset]")) post("/simulator/reset", {});
    });
    var load = document.getElementById("load");
    load.addEventListener("input", function () { document.getElementById("load-value").textContent = load.value + " W"; });
    load.addEventListener("change", function () { post("/simulator/load", { watts: load.value }); });
    document.addEventListener("keydown", function (ev) {
      var tag = (ev.target.tagName || "").toLowerCase();
      if (tag === "input" || tag === "select" || tag === "textarea" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (/^[0-9]$/.test(ev.key)) { post("/simulator/press", { key: ev.key }); ev.preventDefault(); }
      else if (ev.key === "Enter" || ev.key === "#") { post("/simulator/press", { key: "enter" }); ev.preventDefault(); }
      else if (ev.key === "Backspace" || ev.key === "*") { post("/simulator/press", { key: "back" }); ev.preventDefault(); }
    });
    poll();
  });
})();
