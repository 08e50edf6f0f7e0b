// Page hygiene, evaluated in the page by tests/web/test_pages.py (our own check, no library):
// duplicate ids, <label for> that points nowhere, horizontal scroll, and text contrast
// (WCAG 2 relative luminance; every text node's colour against what is painted behind it,
// gradients taken stop by stop; the threshold is 4.5:1 for all text).
(minRatio) => {
  const out = { dupIds: [], badLabels: [], contrast: [], overflow: [] };

  // --- ids and labels -----------------------------------------------------------------
  const counts = new Map();
  for (const el of document.querySelectorAll("[id]")) {
    if (el.id) counts.set(el.id, (counts.get(el.id) || 0) + 1);
  }
  for (const [id, n] of counts) if (n > 1) out.dupIds.push(`#${id} x${n}`);
  for (const label of document.querySelectorAll("label[for]")) {
    const target = document.getElementById(label.htmlFor);
    const text = label.textContent.trim().slice(0, 40);
    if (!target) out.badLabels.push(`"${text}" -> #${label.htmlFor} (no such element)`);
    else if (!target.matches("input, select, textarea, button, meter, output, progress")) {
      out.badLabels.push(`"${text}" -> #${label.htmlFor} (not a form control)`);
    }
  }

  // --- horizontal scroll ----------------------------------------------------------------
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) {
    const wide = [];
    for (const el of document.body.querySelectorAll("*")) {
      const r = el.getBoundingClientRect();
      if (r.right <= root.clientWidth + 1 || r.width === 0) continue;
      let inScroller = false;
      for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
        const ox = getComputedStyle(p).overflowX;
        if (ox === "auto" || ox === "scroll" || ox === "hidden") { inScroller = true; break; }
      }
      if (!inScroller) wide.push(describe(el) + ` (right edge ${Math.round(r.right)} px)`);
      if (wide.length >= 3) break;
    }
    out.overflow.push(`page is ${root.scrollWidth} px wide in ${root.clientWidth} px: ` +
                      wide.join("; "));
  }

  // --- contrast -------------------------------------------------------------------------
  function parse(text) {
    const m = /rgba?\(([^)]+)\)/.exec(text || "");
    if (!m) return null;
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  function lum(c) {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }
  function over(top, under) {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
  }
  function ratio(a, b) {
    const la = lum(a), lb = lum(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }
  function behind(el) {
    // the colours painted behind el, nearest layer first: [[stop, ...], ...]
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.backgroundImage && cs.backgroundImage !== "none") {
        const stops = (cs.backgroundImage.match(/rgba?\([^)]+\)/g) || []).map(parse);
        if (stops.length) layers.push(stops);
        else if (cs.backgroundImage.includes("url(")) return null; // a picture: not judged
      }
      const bg = parse(cs.backgroundColor);
      if (bg && bg[3] > 0) { layers.push([bg]); if (bg[3] >= 1) break; }
    }
    let colours = [[255, 255, 255, 1]];
    for (let i = layers.length - 1; i >= 0; i--) {
      const next = [];
      for (const s of layers[i]) for (const c of colours) next.push(over(s, c));
      colours = next;
    }
    return colours;
  }
  function opacity(el) {
    let o = 1;
    for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity);
    return o;
  }
  function describe(el) {
    let s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    else if (typeof el.className === "string" && el.className.trim()) {
      s += "." + el.className.trim().split(/\s+/).join(".");
    }
    return s;
  }
  function hidden(el) {
    if (!el.getClientRects().length) return true;
    const cs = getComputedStyle(el);
    if (cs.visibility !== "visible" || cs.display === "none") return true;
    const r = el.getBoundingClientRect();
    if (r.width <= 1 && r.height <= 1) return true; // visually hidden (screen readers only)
    if (r.right < 0 || r.bottom < 0) return true; // parked off screen (skip link)
    return el.closest("[hidden], [aria-hidden=true], details:not([open]) > :not(summary)");
  }
  const skip = "script, style, noscript, template, option, title, button:disabled, [aria-disabled=true]";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const done = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || done.has(el) || !node.textContent.trim()) continue;
    done.add(el);
    if (el.closest(skip) || hidden(el)) continue;
    const cs = getComputedStyle(el);
    const svg = el instanceof SVGElement;
    let fg = parse(svg ? cs.fill : cs.color);
    if (!fg) continue;
    fg = [fg[0], fg[1], fg[2], fg[3] * opacity(el)];
    const bgs = behind(svg ? el.ownerSVGElement || el : el);
    if (!bgs) continue;
    let worst = Infinity, worstBg = null;
    for (const bg of bgs) {
      const r = ratio(over(fg, bg), bg);
      if (r < worst) { worst = r; worstBg = bg; }
    }
    if (worst + 1e-9 < minRatio) {
      const hex = (c) => "#" + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
      out.contrast.push(`${describe(el)} "${node.textContent.trim().slice(0, 30)}" ` +
                        `${worst.toFixed(2)}:1 (${hex(over(fg, worstBg))} on ${hex(worstBg)})`);
    }
  }
  return out;
}
