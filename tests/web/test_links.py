"""Roles shape the navigation: every link a role is shown leads to a page it may open.

A crawler signs in as every demo role, starts at the home page and follows every same-origin
link (GET) on every page it reaches, breadth first, and checks each answers 200.  It reads the
pages, not a list of them, so pages added later are covered once something links to them.
"""

from __future__ import annotations

import re
from collections import deque
from html import unescape
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
import pytest

from tests.web.conftest import Site

HREF = re.compile(r"""<a\b[^>]*?\bhref\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
# links that are not pages to read: the API's machine endpoints and downloads
SKIP = ("/static/", "/v1/", "/metrics")
# a crawl visits at most this many distinct URLs per role (lists repeat row links; pages are
# counted by path and query, so one of each kind is reached long before this)
LIMIT = 250
# at most this many URLs that differ only in their query or last path part (one receipt page
# stands for them all)
PER_SHAPE = 3


def sign_in(client: httpx.Client, site: Site, role: str) -> None:
    page = client.get("/login")
    token = CSRF.search(page.text)
    assert token, "the sign-in page has no CSRF field"
    resp = client.post("/login", data={"username": site.operators[role]["username"],
                                       "password": site.password(role),
                                       "csrf": token.group(1), "next": ""})
    assert resp.status_code == 303, f"{role}: sign-in answered {resp.status_code}"


def shape(path: str) -> str:
    """A URL's kind: its path with digit runs, ids and query values folded."""
    parts = urlsplit(path)
    folded = re.sub(r"/[0-9a-f-]{8,}|/\d+", "/#", parts.path)
    keys = sorted(k.split("=", 1)[0] for k in parts.query.split("&") if k)
    return folded + "?" + "&".join(keys)


def crawl(client: httpx.Client, base: str) -> tuple[dict[str, int], dict[str, str]]:
    """{url: status} of every page reached from "/", and {url: the page that linked to it}."""
    seen: dict[str, int] = {}
    found_on: dict[str, str] = {"/": "(start)"}
    shapes: dict[str, int] = {}
    queue = deque(["/"])
    host = urlsplit(base).netloc
    while queue and len(seen) < LIMIT:
        url = queue.popleft()
        if url in seen:
            continue
        resp = client.get(url, follow_redirects=True)
        seen[url] = resp.status_code
        here = resp.url.path + (f"?{resp.url.query.decode()}" if resp.url.query else "")
        if "text/html" not in resp.headers.get("content-type", ""):
            continue
        for _q, raw in HREF.findall(resp.text):
            href = urldefrag(unescape(raw).strip())[0]
            if not href or href.startswith(("mailto:", "tel:", "javascript:")):
                continue
            target = urlsplit(urljoin(str(resp.url), href))
            if target.netloc != host:
                continue
            path = target.path + (f"?{target.query}" if target.query else "")
            if path in seen or path in found_on or path.startswith(SKIP):
                continue
            kind = shape(path)
            shapes[kind] = shapes.get(kind, 0) + 1
            if shapes[kind] > PER_SHAPE:
                continue
            found_on[path] = here
            queue.append(path)
    return seen, found_on


@pytest.mark.slow
def test_every_link_of_every_role_opens(site: Site) -> None:
    problems = []
    reached: dict[str, int] = {}
    for role in sorted(site.operators):
        with httpx.Client(base_url=site.url, timeout=30) as client:
            sign_in(client, site, role)
            seen, found_on = crawl(client, site.url)
        reached[role] = len(seen)
        problems += [f"{role}: {url} answered {status} (linked from {found_on.get(url)})"
                     for url, status in seen.items() if status != 200]
    assert not problems, "\n".join(problems)
    # the crawl went past the home page for everyone (a broken sign-in would reach one page)
    assert all(n > 2 for n in reached.values()), reached


def test_shape_folds_ids_and_query_values() -> None:
    assert shape("/pos/sale/3f2a9c4e-1b2d-4e5f-8a9b-0c1d2e3f4a5b") == "/pos/sale/#?"
    assert shape("/admin/vendors/statement?vendor=A&start=1") == \
        "/admin/vendors/statement?start&vendor"
    assert shape("/pos") != shape("/pos/tests")
