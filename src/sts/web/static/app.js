// Small progressive enhancements; every page works without them.
(function () {
  "use strict";
  // a form marked data-once submits once: a double click cannot post it twice
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute || !form.hasAttribute("data-once")) return;
    if (form.dataset.sent) { ev.preventDefault(); return; }
    form.dataset.sent = "1";
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      setTimeout(function () { b.disabled = true; }, 0);
    });
  });
  // print button and paper size for the slip
  document.addEventListener("click", function (ev) {
    var t = ev.target.closest && ev.target.closest("[data-print]");
    if (t) { window.print(); }
  });
  // a key typed while nothing has the focus yet (a scanner's first digits, the instant the
  // page is there) goes to the page's autofocus field instead of being lost: the focus moves
  // during keydown, so the character lands in the field
  document.addEventListener("keydown", function (ev) {
    var active = document.activeElement;
    if (active && active !== document.body && active !== document.documentElement) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey || !ev.key || ev.key.length !== 1) return;
    var field = document.querySelector("input[autofocus]");
    if (field) field.focus();
  }, true);
  // one-key shortcuts (Print, Next sale): an element marked data-shortcut="p" is clicked when
  // that key is pressed outside any field, with no modifier: typing in a field never fires one
  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    var t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (!ev.key || ev.key.length !== 1) return;
    var el = document.querySelector('[data-shortcut="' + ev.key.toLowerCase() + '"]');
    if (!el) return;
    ev.preventDefault();
    el.click();
  });
  function paper(value) {
    document.documentElement.setAttribute("data-paper", value);
    try { localStorage.setItem("sts-paper", value); } catch (e) { /* private mode */ }
  }
  document.addEventListener("change", function (ev) {
    if (ev.target.matches && ev.target.matches("[data-paper-select]")) paper(ev.target.value);
  });
  document.addEventListener("DOMContentLoaded", function () {
    var saved = null;
    try { saved = localStorage.getItem("sts-paper"); } catch (e) { /* private mode */ }
    var sel = document.querySelector("[data-paper-select]");
    if (saved) { paper(saved); if (sel) sel.value = saved; }
  });
})();
