"""Reports: sales per day / vendor / supply group, a chart, vendor reconciliation, meters due
a key change, rejected deliveries and the audit-chain check; every table also as CSV."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import InputError, StsError
from sts.vending import reports
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_
from sts.vending.usecases import deliveries
from sts.web.common import SECURITY_HEADERS, need, period, web_of
from sts.web.paging import params

router = APIRouter()
Reader = Annotated[Operator, Depends(need("reports"))]
SALES_COLUMNS = ["key", "sales", "reversals", "amount", "vat", "units", "charges", "debt"]
REJECTED_COLUMNS = ["id", "updated_at", "request_id", "meter", "channel", "to", "attempts",
                    "reason"]


def csv_response(text: str, filename: str) -> Response:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in filename)
    resp = Response(text, media_type="text/csv; charset=utf-8")
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    return resp


def per_day(rows: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every day of [start, end), with the days without sales at 0."""
    by_day = {r["key"]: r for r in rows}
    out: list[dict[str, Any]] = []
    day = start.date()
    while day < end.date() and len(out) < 400:
        out.append(by_day.get(day.isoformat(), {"key": day.isoformat(), "amount": "0.00"}))
        day += timedelta(days=1)
    return out


GROUP_TITLES = {"day": "day", "vendor": "vendor", "sgc": "supply group"}
CHART_ROWS = 62  # a longer period shows its first 62 groups (the table has them all)


def chart(rows: list[dict[str, Any]], width: int = 360, row_h: int = 26) -> dict[str, Any]:
    """Horizontal bars of the amount per group (day, vendor, supply group), laid out for an
    inline SVG (no script, no styles).  The drawing is as wide as a phone, so on a phone its
    labels keep their size; the stylesheet caps how far it grows on a desktop."""
    rows = rows[:CHART_ROWS]
    values = [max(Decimal(r["amount"]), Decimal(0)) for r in rows]
    top = max(values, default=Decimal(0)) or Decimal(1)
    label_w, amount_w, pad = 92, 84, 6
    plot_w = width - label_w - amount_w - 2 * pad
    bars = []
    for i, (r, v) in enumerate(zip(rows, values, strict=True)):
        key = str(r["key"])
        label = key[5:] if len(key) == 10 and key[4] == "-" else key
        if len(label) > 13:
            label = label[:12] + "…"
        y = pad + i * row_h
        bars.append({"y": y, "ty": y + row_h * 0.68, "x": label_w,
                     "w": round(max(float(v / top) * plot_w, 1.0 if v > 0 else 0.0), 1),
                     "h": row_h - 8, "by": y + 4, "label": label, "full": key,
                     "amount": r["amount"], "ax": width - pad})
    height = pad * 2 + max(len(rows), 1) * row_h
    return {"width": width, "height": height, "bars": bars, "label_w": label_w,
            "base_x": label_w, "truncated": len(values) >= CHART_ROWS}


@router.get("/reports")
def reports_page(request: Request, op: Reader) -> Response:
    web = web_of(request)
    by = request.query_params.get("by", "day")
    table = request.query_params.get("table", "sales")
    try:
        start, end = period(request, web, days=7)
        if by not in reports.GROUPS:
            raise InputError(N_("group by day, vendor or sgc"), field="by")
        got = web.service.report(web.caller(op), start, end, by)
        sales, days, recon, due = got["sales"], got["days"], got["recon"], got["due"]
        # the refused deliveries: a page of them on the page, the latest 1,000 in the CSV
        query = params(request)
        rejected = deliveries.rejected_page(web.service, web.caller(op), query)
        rejected.filters = {k: query[k] for k in ("start", "end", "by") if query.get(k)}
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Reports"), message=exc)
    if request.query_params.get("format") == "csv":
        stamp = f"{start.date()}_{(end - timedelta(days=1)).date()}"
        cur = web.money(request)
        if table == "reconciliation":
            return csv_response(reports.to_csv(recon["rows"], money=cur,
                                               money_columns=reports.RECON_MONEY),
                                f"reconciliation-{stamp}.csv")
        if table == "key-changes":
            return csv_response(reports.to_csv(due), "key-changes-due.csv")
        if table == "rejected-deliveries":
            rows = [{name: item.get(name, "") for name in REJECTED_COLUMNS}
                    for item in web.service.rejected_deliveries(web.caller(op))]
            return csv_response(reports.to_csv(rows, REJECTED_COLUMNS),
                                "rejected-deliveries.csv")
        return csv_response(reports.to_csv(sales["rows"] + [sales["total"]], SALES_COLUMNS,
                                           money=cur, money_columns=reports.SALES_MONEY),
                            f"sales-by-{by}-{stamp}.csv")
    check = got["check"]
    return web.render(request, "reports.html", op, sales=sales, recon=recon, due=due,
                      rejected=rejected,
                      chart=chart(per_day(days["rows"], start, end) if by == "day"
                                  else sales["rows"]),
                      group=GROUP_TITLES[by], by=by, check=check,
                      start=start.date().isoformat(),
                      end=(end - timedelta(days=1)).date().isoformat())
