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
from sts.web.common import SECURITY_HEADERS, need, period, web_of

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


def chart(rows: list[dict[str, Any]], width: int = 640, height: int = 200) -> dict[str, Any]:
    """Bars of the amount per day, laid out for an inline SVG (no script, no styles)."""
    values = [max(Decimal(r["amount"]), Decimal(0)) for r in rows]
    top = max(values, default=Decimal(0)) or Decimal(1)
    n = max(len(rows), 1)
    left, bottom, plot_h = 48, 24, height - 24 - 12
    slot = (width - left - 8) / n
    bars = []
    for i, (r, v) in enumerate(zip(rows, values, strict=True)):
        h = float(v / top) * plot_h
        w = min(slot * 0.7, 48)
        bars.append({"x": round(left + i * slot + (slot - w) / 2, 1), "w": round(w, 1),
                     "y": round(height - bottom - h, 1), "h": round(h, 1),
                     "label": r["key"][5:] if len(r["key"]) == 10 else r["key"],
                     "lx": round(left + i * slot + slot / 2, 1), "amount": r["amount"]})
    return {"width": width, "height": height, "bars": bars, "top": str(top.quantize(Decimal(1))),
            "left": left, "base": height - bottom, "every": max(1, n // 12)}


@router.get("/reports")
def reports_page(request: Request, op: Reader) -> Response:
    web = web_of(request)
    by = request.query_params.get("by", "day")
    table = request.query_params.get("table", "sales")
    try:
        start, end = period(request, web, days=7)
        if by not in reports.GROUPS:
            raise InputError("group by day, vendor or sgc", field="by")
        got = web.service.report(web.caller(op), start, end, by)
        sales, days, recon, due = got["sales"], got["days"], got["recon"], got["due"]
        rejected = [{name: item.get(name, "") for name in REJECTED_COLUMNS}
                    for item in got["rejected"]]
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Reports"), message=exc.message)
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
            return csv_response(reports.to_csv(rejected, REJECTED_COLUMNS),
                                "rejected-deliveries.csv")
        return csv_response(reports.to_csv(sales["rows"] + [sales["total"]], SALES_COLUMNS,
                                           money=cur, money_columns=reports.SALES_MONEY),
                            f"sales-by-{by}-{stamp}.csv")
    check = got["check"]
    return web.render(request, "reports.html", op, sales=sales, recon=recon, due=due,
                      rejected=rejected,
                      chart=chart(per_day(days["rows"], start, end)), by=by, check=check,
                      start=start.date().isoformat(),
                      end=(end - timedelta(days=1)).date().isoformat())
