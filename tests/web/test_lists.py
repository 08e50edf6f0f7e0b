"""The paged lists, the record pages and the audit log over HTTP (SQLite and PostgreSQL):
140 meters, every one reached page by page exactly once in each sort; searches as people
type them; bad paging refused naming the field; each role sees what the policy lets it."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import pytest

from sts.codec.pan import MeterPan, luhn_check_digit
from sts.vending.registry.importer import import_meters
from sts.vending.usecases.lists import printed
from tests.fixtures import Demo

N = 140
pytestmark = pytest.mark.slow  # 140 meters and argon2 sign-ins: seconds per test


def _pan(i: int) -> str:
    body = f"07{30000000 + i:08d}"
    return MeterPan.from_drn(body + str(luhn_check_digit(body))).pan


@pytest.fixture
def town(demo: Demo) -> Demo:
    """The demo plus 140 meters: every third customer in Soweto, every seventh meter blocked."""
    rows = ((i, {"meter": _pan(i), "sgc": "999910", "krn": 1, "ti": 1, "kt": 2,
                 "tariff": "Flat", "account_no": f"LST{i:05d}", "name": f"Lerato {i:03d} Dube",
                 "address": f"{i} {'Soweto' if i % 3 == 0 else 'Tembisa'} Road"})
            for i in range(N))
    done = import_meters(demo.service.db, rows, actor="tests", at=demo.clock(), source="tests")
    assert done.ok
    for i in range(0, N, 7):
        demo.registry.set_meter_status(_pan(i), "blocked", "tampered seal")
    return demo


_PASSWORDS: dict[int, dict[str, dict[str, str]]] = {}


def _sign_in(demo: Demo, role: str) -> str:
    from sts.vending.registry import operators as operator_admin

    if id(demo) not in _PASSWORDS:  # set once per test: each password is an argon2 hash
        _PASSWORDS.clear()
        _PASSWORDS[id(demo)] = operator_admin.demo_passwords(demo.registry)
    passwords = _PASSWORDS[id(demo)]
    demo.client.cookies.clear()
    login = demo.client.get("/login")
    resp = demo.client.post("/login", data={"csrf": _csrf(login.text),
                                            "username": passwords[role]["username"],
                                            "password": passwords[role]["password"]},
                            follow_redirects=False)
    assert resp.status_code == 303, resp.text
    return _csrf(demo.client.get("/").text) if role != "auditor" else ""


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def _numbers(html: str) -> list[str]:
    return re.findall(r'<a href="/meters/(\d+)">', html)


def _count(html: str, list_id: str = "meters") -> str:
    found = re.search(rf'id="{list_id}-count" role="status">([^<]*)<', html)
    assert found, html[:2000]
    return " ".join(found.group(1).split())


def _all_pages(demo: Demo, path: str, **query: str) -> list[str]:
    seen: list[str] = []
    page = 1
    while True:
        resp = demo.client.get(path, params={**query, "page": str(page), "size": "25"})
        assert resp.status_code == 200, resp.text[:500]
        found = _numbers(resp.text)
        if not found:
            return seen
        seen += found
        page += 1


def test_every_meter_once_in_every_sort(town: Demo) -> None:
    _sign_in(town, "admin")
    total = N + len(town.meters) + 1  # the demo's meters and its known meter too
    for sort in ("number", "status", "registered"):
        forward = _all_pages(town, "/admin/meters", sort=sort)
        assert len(forward) == total and len(set(forward)) == total, sort
        backward = _all_pages(town, "/admin/meters", sort=sort, order="desc")
        assert backward == forward[::-1], sort
        if sort == "number":
            assert forward == sorted(forward)


def _walk(demo: Demo, path: str, rel: str, **query: str) -> tuple[list[str], list[str]]:
    """The meters seen following the pages' `rel` links from `path`, and the counts shown."""
    seen: list[str] = []
    counts: list[str] = []
    url: str | None = path
    params: dict[str, str] | None = {**query, "size": "25"}
    while url:
        assert len(counts) < 20, (url, counts[-3:])
        resp = demo.client.get(url, params=params)
        assert resp.status_code == 200, resp.text[:500]
        seen += _numbers(resp.text)
        counts.append(_count(resp.text))
        found = re.search(rf'href="(\?[^"]*)" rel="{rel}"', resp.text)
        url, params = (path + html.unescape(found.group(1)), None) if found else (None, None)
    return seen, counts


def test_next_and_previous_seek_through_every_sort(town: Demo) -> None:
    _sign_in(town, "admin")
    total = N + len(town.meters) + 1
    for sort, order in (("number", "asc"), ("status", "desc"), ("registered", "asc")):
        by_offset = _all_pages(town, "/admin/meters", sort=sort, order=order)
        forward, counts = _walk(town, "/admin/meters", "next", sort=sort, order=order)
        assert forward == by_offset and len(set(forward)) == total, sort
        assert counts[1] == f"26–50 of {total} meters" and len(counts) == -(-total // 25)
        last = str(len(counts))
        back, _ = _walk(town, "/admin/meters", "prev", sort=sort, order=order, page=last)
        pages = [by_offset[i:i + 25] for i in range(0, total, 25)]
        assert back == [n for p in reversed(pages) for n in p], sort
    listing = town.client.get("/admin/meters", params={"size": "25"}).text
    assert "after=" in listing  # the link carries the last row's key, not only a page number
    for bad in ('["x"', '["1","2"]', "[1]", "x" * 400):
        resp = town.client.get("/admin/meters", params={"after": bad})
        assert resp.status_code == 422 and "after must be the sort key" in resp.text.lower(), bad


def test_the_count_and_the_last_page(town: Demo) -> None:
    _sign_in(town, "admin")
    total = N + len(town.meters) + 1
    first = town.client.get("/admin/meters").text
    assert _count(first) == f"1–50 of {total} meters"
    last = town.client.get("/admin/meters", params={"page": "3"}).text
    assert _count(last) == f"101–{total} of {total} meters"
    # the last page is read from the far end: the same rows as walking forward
    assert _numbers(last) == _all_pages(town, "/admin/meters")[100:]
    assert 'rel="next"' not in last and 'rel="prev"' in last


def test_search_by_the_number_as_printed(town: Demo) -> None:
    _sign_in(town, "admin")
    for typed in ("0730 0000 12", "07300000-12", "73000001"):
        html = town.client.get("/admin/meters", params={"q": typed}).text
        want = printed(_pan(12)).replace(" ", "")
        assert want in _numbers(html), typed
        assert all(typed.replace(" ", "").replace("-", "") in _pan_of(n)
                   for n in _numbers(html))


def _pan_of(drn: str) -> str:
    return MeterPan.from_drn(drn).pan


def test_search_by_name_account_and_address_in_any_case(town: Demo) -> None:
    _sign_in(town, "admin")
    soweto = _all_pages(town, "/admin/meters", q="soWETO")
    assert len(soweto) == len([i for i in range(N) if i % 3 == 0])
    html = town.client.get("/admin/meters", params={"q": "lerato 042"}).text
    assert _numbers(html) == [printed(_pan(42)).replace(" ", "")]
    assert _count(html) == "1–1 of 1 meters"
    html = town.client.get("/admin/meters", params={"q": "lst00099"}).text
    assert _numbers(html) == [printed(_pan(99)).replace(" ", "")]
    # wildcards are text, not patterns
    assert _numbers(town.client.get("/admin/meters", params={"q": "%"}).text) == []
    customers = town.client.get("/admin/customers", params={"q": "SOWETO", "sort": "name",
                                                            "order": "desc"}).text
    names = re.findall(r"<td>(Lerato \d+ Dube)</td>", customers)
    assert len(names) == 47 and names == sorted(names, reverse=True)
    assert _count(customers, "customers") == "1–47 of 47 customers"


BAD = [({"page": "0"}, "page"), ({"page": "x"}, "page"), ({"size": "7"}, "size"),
       ({"sort": "pan;drop"}, "sort"), ({"sort": "customer"}, "sort"), ({"order": "up"}, "order"),
       ({"q": "x" * 101}, "q")]


def test_bad_paging_is_refused_naming_the_field(town: Demo) -> None:
    _sign_in(town, "admin")
    for query, field in BAD:
        resp = town.client.get("/admin/meters", params=query)
        said = "search has at most" if field == "q" else f"{field} must"
        assert resp.status_code == 422 and said in resp.text.lower(), query


def test_row_actions_live_on_the_meter_page(town: Demo) -> None:
    csrf = _sign_in(town, "admin")
    listing = town.client.get("/admin/meters").text
    assert "/admin/meters/status" not in listing and "/admin/meters/tariff" not in listing
    drn = printed(_pan(5)).replace(" ", "")
    page = town.client.get(f"/meters/{drn}")
    assert page.status_code == 200 and "/admin/meters/status" in page.text
    assert printed(_pan(5)) in page.text
    resp = town.client.post("/admin/meters/status", follow_redirects=False, data={
        "csrf": csrf, "meter": _pan(5), "action": "block", "reason": "meter bypassed"})
    assert resp.status_code == 303 and resp.headers["location"] == f"/meters/{drn}?ok=meter-blocked"
    page = town.client.get(f"/meters/{drn}").text
    assert "meter bypassed" in page and 'id="block-history"' in page
    # any way of typing the number leads to the one address
    spaced = town.client.get(f"/meters/{_pan(5)}", follow_redirects=False)
    assert spaced.status_code == 303 and spaced.headers["location"] == f"/meters/{drn}"
    assert town.client.get("/meters/12345").status_code == 422


def test_meter_page_shows_sales_and_tokens_by_role(town: Demo) -> None:
    sold = town.buy(town.meters[0], "100")
    assert sold.status_code == 201, sold.text
    token = sold.json()["tokens"][0]["token"]
    grouped = " ".join(token[i:i + 4] for i in range(0, len(token), 4))
    drn = printed(town.meters[0]).replace(" ", "")
    _sign_in(town, "vendor")
    cashier = town.client.get(f"/meters/{drn}").text
    assert grouped in cashier and "tampered" not in cashier
    _sign_in(town, "engineer")
    engineer = town.client.get(f"/meters/{drn}").text
    assert grouped not in engineer and "0000000" in engineer  # the receipt, not the token
    _sign_in(town, "auditor")
    assert grouped in town.client.get(f"/meters/{drn}").text


def test_the_audit_log_filters_pages_and_exports(town: Demo) -> None:
    town.registry.set_meter_status(_pan(3), "active", "")
    _sign_in(town, "auditor")
    page = town.client.get("/audit", params={"action": "meter.blocked"})
    assert page.status_code == 200
    assert _count(page.text, "audit") == "1–20 of 20 entries"
    assert page.text.count("checks out") == 20
    by_record = town.client.get("/audit", params={"record": printed(_pan(3))}).text
    assert "meter.active" in by_record and "meter.blocked" not in by_record.split("<tbody>")[1]
    csv_resp = town.client.get("/audit.csv", params={"action": "meter"})
    assert csv_resp.status_code == 200
    rows = list(csv.DictReader(io.StringIO(csv_resp.text)))
    actions = {r["action"] for r in rows}
    assert {"meter.blocked", "meter.active"} <= actions
    assert all(a.startswith("meter.") for a in actions)
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    assert all(r["checks_out"] == "True" for r in rows)
    bad = town.client.get("/audit", params={"start": "2026-13-01"})
    assert bad.status_code == 422 and "start must be a date" in bad.text.lower()
    _sign_in(town, "vendor")
    assert town.client.get("/audit").status_code == 403
    assert town.client.get("/audit.csv").status_code == 403


def test_a_broken_entry_is_shown_as_not_checking_out(town: Demo) -> None:
    from sqlalchemy import update

    from sts.vending.storage.tables import audit_log

    with town.service.db.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(actor="intruder"))
    _sign_in(town, "admin")
    html = town.client.get("/audit", params={"sort": "seq", "order": "asc", "size": "25"}).text
    marks: list[Any] = re.findall(r'data-seq="(\d+)" data-ok="(\w+)"', html)
    assert ("3", "no") in marks and ("2", "yes") in marks and ("4", "yes") in marks


def test_a_very_large_list_says_about(town: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    from sts.vending import listing

    monkeypatch.setattr(listing, "EXACT_UP_TO", 100)
    if not town.service.db.is_sqlite:  # the planner's estimate as a running database has it
        with town.service.db.begin() as conn:
            conn.exec_driver_sql("ANALYZE meters")
    _sign_in(town, "admin")
    text = town.client.get("/admin/meters").text
    if town.service.db.is_sqlite:  # SQLite has no planner estimate: it counts
        assert _count(text) == f"1–50 of {N + len(town.meters) + 1} meters"
    else:
        assert re.fullmatch(r"1–50 of about [\d,]+ meters", _count(text)), _count(text)
        # the last page: read from the end of the index, numbered by the estimate
        last = re.search(r'href="(\?[^"]*last=1[^"]*)" aria-label="Last page"', text)
        assert last, text[-3000:]
        tail = town.client.get("/admin/meters" + html.unescape(last.group(1))).text
        every = _all_pages(town, "/admin/meters")
        assert _numbers(tail) == every[-len(_numbers(tail)):] and _numbers(tail)
        assert re.fullmatch(r"[\d,]+–[\d,]+ of about [\d,]+ meters", _count(tail))
        assert 'rel="next"' not in tail and 'rel="prev"' in tail
    assert 'rel="next"' in text


def _cells(html_text: str, table: str) -> list[list[str]]:
    """The text of each cell of each body row of table `table`."""
    body = html_text.split(f'id="{table}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>")[0]
    rows = re.findall(r"<tr.*?</tr>", body, re.S)
    return [[" ".join(re.sub(r"<[^>]+>", " ", cell).split())
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]


def test_vendors_operators_and_keys_page_sort_and_search(town: Demo) -> None:
    for i in range(30):
        town.registry.add_vendor(f"Trader {i:02d}", address=f"{i} Market Street, "
                                 f"{'Soweto' if i % 2 else 'Tembisa'}")
        town.registry.add_api_key("vendor", label=f"till-{i:02d}", vendor=f"Trader {i:02d}")
    from sts.vending.registry import catalogue

    total = len(catalogue.list_vendors(town.service.db))
    _sign_in(town, "admin")
    vendors = town.client.get("/admin/vendors", params={"size": "25"}).text
    assert _count(vendors, "vendors") == f"1–25 of {total} vendors"
    link = re.search(r'href="(\?[^"]*)" rel="next"', vendors)
    assert link is not None
    nxt = town.client.get("/admin/vendors" + html.unescape(link.group(1))).text
    assert _count(nxt, "vendors") == f"26–{total} of {total} vendors"
    names = re.findall(r'data-float="([^"]+)"', vendors + nxt)
    assert len(set(names)) == total and names == sorted(names)
    # Next seeks from a money key as well: the same rows as page 2 by offset
    by_float = town.client.get("/admin/vendors", params={"size": "25", "sort": "float",
                                                        "order": "desc"}).text
    seek = re.search(r'href="(\?[^"]*after=[^"]*)" rel="next"', by_float)
    assert seek, by_float[-3000:]
    offset = town.client.get("/admin/vendors", params={"size": "25", "sort": "float",
                                                      "order": "desc", "page": "2"}).text
    seeked = town.client.get("/admin/vendors" + html.unescape(seek.group(1))).text
    assert re.findall(r'data-float="([^"]+)"', seeked) == re.findall(
        r'data-float="([^"]+)"', offset) != []
    soweto = town.client.get("/admin/vendors", params={"q": "SOWETO", "sort": "name",
                                                      "order": "desc"}).text
    found = re.findall(r"<td>(Trader \d\d)<br>", soweto)
    assert found == sorted(found, reverse=True) and len(found) == 15
    assert _count(soweto, "vendors") == "1–15 of 15 vendors"
    bad = town.client.get("/admin/vendors", params={"sort": "float_balance"})
    assert bad.status_code == 422 and "sort must be one of" in bad.text.lower()

    keys = town.client.get("/admin/api-keys", params={"q": "till-", "sort": "label"}).text
    labels = [r[2] for r in _cells(keys, "api-keys")]
    assert labels[:25] == [f"till-{i:02d}" for i in range(25)]
    assert _count(keys, "keys") == "1–30 of 30 keys"
    assert [r[2] for r in _cells(town.client.get("/admin/api-keys", params={
        "q": "Trader 07"}).text, "api-keys")] == ["till-07"]

    people = town.client.get("/admin/operators", params={"sort": "role"}).text
    roles = [r[0].removeprefix("demo-") for r in _cells(people, "operators")
             if r[0].startswith("demo-")]  # the demo operators are named for their role
    assert roles == sorted(roles) and len(roles) == 5
    sup = town.client.get("/admin/operators", params={"q": "demo-SUP"}).text
    assert [r[0] for r in _cells(sup, "operators")] == ["demo-supervisor"]
    assert town.client.get("/admin/operators", params={"page": "x"}).status_code == 422
    _sign_in(town, "supervisor")
    assert town.client.get("/admin/api-keys").status_code == 403


def test_reversals_list_pages_the_callers_own_sales(town: Demo) -> None:
    town.registry.add_vendor("Other Vendor", float_balance="5000", sgcs=["999910"])
    other = town.registry.add_api_key("vendor", vendor="Other Vendor")
    sold = [town.buy(amount=a).json() for a in ("30", "10", "20")]
    theirs = town.client.post("/v1/purchases/other-vendor-sale-1", json={
        "meter": town.meters[0], "amount": "40"}, headers={"Authorization": f"Bearer {other}"})
    assert theirs.status_code == 201, theirs.text
    _sign_in(town, "supervisor")  # bound to the demo vendor
    page = town.client.get("/admin/reversals").text
    receipts = [r[0] for r in _cells(page, "sales")]
    assert receipts == sorted((s["receipt"]["receipt_no"] for s in sold), reverse=True)
    assert theirs.json()["receipt"]["receipt_no"] not in page
    assert _count(page, "sales") == "1–3 of 3 sales"
    by_amount = town.client.get("/admin/reversals", params={"sort": "amount",
                                                           "order": "asc"}).text
    assert [r[0] for r in _cells(by_amount, "sales")] == [
        sold[i]["receipt"]["receipt_no"] for i in (1, 2, 0)]
    spaced = printed(town.meters[0])
    assert len(_cells(town.client.get("/admin/reversals", params={"q": spaced}).text,
                      "sales")) == 3
    one = town.client.get("/admin/reversals", params={"q": sold[1]["receipt"]["receipt_no"]})
    assert [r[0] for r in _cells(one.text, "sales")] == [sold[1]["receipt"]["receipt_no"]]
    # a meter asked for the old way is read as the search
    assert "1–3 of 3 sales" in _count(town.client.get(
        "/admin/reversals", params={"meter": town.meters[0]}).text, "sales")
    bad = town.client.get("/admin/reversals", params={"sort": "vendor"})
    assert bad.status_code == 422 and "sort must be one of" in bad.text.lower()


def test_the_simulator_picker_searches_and_pages(town: Demo) -> None:
    _sign_in(town, "engineer")
    page = town.client.get("/simulator", params={"size": "25"}).text
    total = N + len(town.meters) + 1
    assert _count(page, "pick") == f"1–25 of {total} meters"
    assert "<select" not in page.split('id="pick-search"')[0].split("</h1>")[-1]
    found = town.client.get("/simulator", params={"q": "lerato 042"}).text
    drn = printed(_pan(42)).replace(" ", "")
    assert _cells(found, "pick") == [[printed(_pan(42)), "Lerato 042 Dube"]]
    # the picked meter stays on the screen while the list pages
    shown = town.client.get("/simulator", params={"meter": drn, "size": "25"}).text
    assert f'data-meter="{_pan(42)}"' in shown
    nxt = re.search(r'href="(\?[^"]*)" rel="next"', shown)
    assert nxt and f"meter={drn}" in html.unescape(nxt.group(1))
    by_number = town.client.get("/simulator", params={"q": printed(_pan(7))}).text
    assert [r[0] for r in _cells(by_number, "pick")] == [printed(_pan(7))]
    assert town.client.get("/simulator", params={"size": "7"}).status_code == 422
