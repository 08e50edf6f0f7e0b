"""Page hygiene on every page for every demo role, found by crawling the navigation (so pages
added later are covered without touching this test): unique element ids, every `<label for>`
pointing at a form control, no horizontal scroll at 390 px wide nor at 200 % zoom (a 1280 px
window zoomed to 200 % lays out 640 CSS px), and text contrast of at least 4.5:1.

The checks are our own JavaScript (tests/web/page_checks.js), evaluated in Chromium.  Only
links are followed (GET): nothing is changed by crawling.  The pages' HTML does not depend on
the database, so this runs on SQLite only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.web.conftest import Site, shot, sign_in

CHECKS = (Path(__file__).parent / "page_checks.js").read_text(encoding="utf-8")
ROLES = ("vendor", "supervisor", "engineer", "admin", "auditor")
WIDTHS = {"desktop": (1280, 800), "phone 390 px": (390, 844), "200 % zoom": (640, 400)}
MAX_PAGES = 40  # per role: a runaway crawl (a link per record) stops here
MIN_RATIO = 4.5
NOT_PAGES = ("/logout", "/static/", "/docs", "/openapi.json", "/v1/")

pytestmark = pytest.mark.slow


def _key(url: str) -> str | None:
    """What makes a link another page: its path and the names of its query parameters (the
    first link of each kind is crawled: page 2 of a list is the same page as page 1)."""
    parts = urlsplit(url)
    if any(parts.path.startswith(p) for p in NOT_PAGES):
        return None
    names = sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)})
    if "format" in names:  # CSV downloads
        return None
    return parts.path + ("?" + "&".join(names) if names else "")


def _links(page: Any, origin: str) -> list[str]:
    hrefs: list[str] = page.eval_on_selector_all(
        "a[href]:not([download])", "els => els.map(a => a.href.split('#')[0])")
    return [h for h in hrefs if h.startswith(origin)]


def _crawl(page: Any, site: Site, role: str) -> tuple[list[str], list[str]]:
    """Every page the role reaches from its start page: (pages, problems)."""
    pages: list[str]
    queue, seen, pages, problems = [site.url + "/"], set(), [], []
    while queue and len(pages) < MAX_PAGES:
        url = queue.pop(0)
        key = _key(url[len(site.url):] or "/")
        if key is None or key in seen:
            continue
        seen.add(key)
        resp = page.goto(url)
        page.wait_for_load_state()
        path = page.url[len(site.url):]
        if resp is None or resp.status != 200:
            # a link the role may not follow is the link checker's finding (issue 20, point
            # 7), not a hygiene problem of a page: nothing to check here
            continue
        pages.append(path)
        for width_name, (w, h) in WIDTHS.items():
            page.set_viewport_size({"width": w, "height": h})
            found = page.evaluate(CHECKS, MIN_RATIO)
            tag = f"{role} {path} [{width_name}]"
            problems += [f"{tag} overflow: {x}" for x in found["overflow"]]
            if width_name == "desktop":  # the same DOM at every width: report once
                problems += [f"{tag} duplicate id {x}" for x in found["dupIds"]]
                problems += [f"{tag} label {x}" for x in found["badLabels"]]
            problems += [f"{tag} contrast {x}" for x in found["contrast"]]
        page.set_viewport_size({"width": 1280, "height": 800})
        queue += [u for u in _links(page, site.url) if u not in queue]
    return pages, problems


BAD_PAGE = """<!doctype html><html><head><meta name="viewport" content="width=device-width">
<style>body{margin:0;background:#fff} .faint{color:#aaa} .wide{width:900px;height:4px}
.grad{background:linear-gradient(#333,#eee);color:#777} .ok{color:#222}</style></head><body>
<p id="x" class="faint">faint grey text</p><p id="x" class="ok">dark text</p>
<div class="grad"><span>on a gradient</span></div>
<label for="nowhere">Amount</label><label for="x">Not a control</label>
<div class="wide"></div></body></html>"""


def test_the_checks_find_what_they_look_for(new_page: Any) -> None:
    """The checker itself on a page with one of each fault (and one clean text)."""
    page = new_page(viewport={"width": 390, "height": 600})
    page.set_content(BAD_PAGE)
    found = page.evaluate(CHECKS, MIN_RATIO)
    assert found["dupIds"] == ["#x x2"]
    assert [b.split(" -> ")[1] for b in found["badLabels"]] == [
        "#nowhere (no such element)", "#x (not a form control)"]
    assert len(found["overflow"]) == 1 and "div.wide" in found["overflow"][0]
    texts = sorted(c.split('"')[1] for c in found["contrast"])
    assert texts == ["faint grey text", "on a gradient"]
    page.set_content(BAD_PAGE.replace('class="wide"', "").replace("#aaa", "#595959")
                     .replace("#777", "#000").replace("#333", "#ddd"))
    clean = page.evaluate(CHECKS, MIN_RATIO)
    assert clean["overflow"] == [] and clean["contrast"] == []


@pytest.mark.parametrize("role", ROLES)
def test_every_page_for_every_role(site: Site, new_page: Any, role: str) -> None:
    if site.backend != "sqlite":
        pytest.skip("the pages' HTML does not depend on the database: crawled on SQLite")
    page = new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, site, role)
    reached, problems = _crawl(page, site, role)
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, f"pages-{role}-phone", site)
    # the crawl really went somewhere: the role's home page and more
    assert len(reached) >= 2, reached
    assert {"admin": "/admin/tariffs", "auditor": "/simulator"}.get(role, reached[0]) in reached
    # contrast problems are reported per distinct text, not once per width
    unique = list(dict.fromkeys(problems))
    assert not unique, f"{len(unique)} problems on {len(reached)} pages:\n" \
        + "\n".join(unique[:80])
