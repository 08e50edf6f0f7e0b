"""The back office's tariffs (administrator): each tariff's prices as rows ("up to N units:
price"), a change with the time it takes effect (a new version; `sts.vending.tariff_history`
keeps them all), and each tariff's history.

The rows are plain form fields (`up_to_0`, `price_0`, ...).  "Add a row" and "Remove" are
submit buttons that post the form to `/admin/tariffs/rows`, which shows the page again with
the rows changed and nothing saved; with htmx only the form is swapped.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import InputError
from sts.vending import tariff_history
from sts.vending.access.operators import Operator
from sts.vending.registry import catalogue
from sts.web.common import Web, posted
from sts.web.office import action, list_page

router = APIRouter()
MAX_ROWS = 20
NEW = "new"  # the key of the new-tariff form


def _load(request: Request, web: Web) -> dict[str, Any]:
    db = web.service.db
    zone = tariff_history.office_zone(db)
    now = web.now()
    listed = catalogue.list_tariffs(db)
    for t in listed:
        t["history"] = tariff_history.history(db, t["name"], now)
        for h in t["history"]:
            h["effective"] = tariff_history.local_text(h["effective_from"], zone)
        t["rows"] = [{"up_to": b["up_to"] or "", "price": b["price"]} for b in t["blocks"]]
    return {"tariffs": listed, "zone": zone, "max_rows": MAX_ROWS,
            "new_rows": [{"up_to": "", "price": ""}]}


show_tariffs = list_page(router, "/admin/tariffs", "admin/tariffs.html", _load,
                         endpoint="tariffs_page")


def rows_of(form: dict[str, str]) -> list[dict[str, str]]:
    """The price rows as posted, in order (at most MAX_ROWS)."""
    return [{"up_to": form.get(f"up_to_{i}", "").strip(),
             "price": form.get(f"price_{i}", "").strip()}
            for i in range(MAX_ROWS) if f"price_{i}" in form or f"up_to_{i}" in form]


def blocks_of(rows: list[dict[str, str]]) -> list[tuple[str | None, str]]:
    """The price blocks of the rows: blank rows left out; a row with a limit needs a price."""
    out: list[tuple[str | None, str]] = []
    for i, r in enumerate(rows):
        if not r["up_to"] and not r["price"]:
            continue
        if not r["price"]:
            raise InputError(f"give the price of row {i + 1}", field=f"price_{i}")
        out.append((r["up_to"] or None, r["price"]))
    if not out:
        raise InputError("give at least one price", field="price_0")
    return out


def _field(exc_field: str | None) -> str | None:
    """A rule's field (`blocks[1].up_to`) as the form's (`up_to_1`)."""
    if exc_field and exc_field.startswith("blocks[") and "]." in exc_field:
        index, _, name = exc_field[len("blocks["):].partition("].")
        return f"{name}_{index}"
    return exc_field


def _terms(form: dict[str, str]) -> tariff_history.Terms:
    pct = form.get("vat_percent", "0").strip() or "0"
    try:
        vat = str(Decimal(pct) / 100)
    except ArithmeticError:
        raise InputError("VAT is a percentage, e.g. 15", field="vat_percent") from None
    return tariff_history.Terms(
        blocks=blocks_of(rows_of(form)), vat_rate=vat,
        fixed_monthly=form.get("fixed_monthly", "0").strip() or "0",
        debt_share=form.get("debt_share", "0").strip() or "0",
        free_units=form.get("free_units", "0").strip() or "0",
        min_amount=form.get("min_amount", "0").strip() or "0",
        max_amount=form.get("max_amount", "").strip() or None,
        description=form.get("description", "").strip())


def _rethrow(exc: InputError) -> InputError:
    mapped = _field(exc.field)
    if mapped != exc.field:
        return type(exc)(exc.template, field=mapped, **exc.params)
    return exc


@action(router, "/admin/tariffs", show_tariffs, "/admin/tariffs")
def tariff_save(web: Web, op: Operator, form: dict[str, str]) -> str:
    name = form.get("name", "").strip()
    if not name:
        raise InputError("give the tariff a name", field="name")
    try:
        terms = _terms(form)
        if form.get("existing"):
            zone = tariff_history.office_zone(web.service.db)
            start = tariff_history.parse_effective(form.get("effective_from", ""), zone)
            tariff_history.change(web.registry(op), name, terms, effective_from=start)
            return "tariff-scheduled" if start is not None else "tariff-updated"
        web.registry(op).add_tariff(name, blocks=terms.blocks, vat_rate=terms.vat_rate,
                                    fixed_monthly=terms.fixed_monthly,
                                    debt_share=terms.debt_share, free_units=terms.free_units,
                                    min_amount=terms.min_amount, max_amount=terms.max_amount,
                                    description=terms.description)
    except InputError as exc:
        raise _rethrow(exc) from None
    return "tariff-added"


@router.post("/admin/tariffs/rows", name="tariff_rows")
def tariff_rows(request: Request, sent: Annotated[tuple[Operator, dict[str, str]],
                                                  Depends(posted("admin"))]) -> Response:
    """Add or remove a price row of one form; nothing is saved."""
    op, form = sent
    rows = rows_of(form)
    what = form.get("rows_op", "")
    if what == "add" and len(rows) < MAX_ROWS:
        rows.append({"up_to": "", "price": ""})
    elif what.startswith("remove-") and what[len("remove-"):].isdigit():
        index = int(what[len("remove-"):])
        if 0 <= index < len(rows) and len(rows) > 1:
            rows.pop(index)
    return show_tariffs(request, op, form=form, editing=form.get("form_key", ""),
                        editing_rows=rows)

