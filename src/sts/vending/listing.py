"""Every long list, one way: a page of rows on the server, sorted by a whitelisted key with a
stable tie-break, filtered by what people type, with "N–M of TOTAL".

A list is a `ListSpec` (its sort keys) and a query of the ids it holds.  `fetch` sorts and cuts
the ids in the database (the index does the work, the joined display columns are read for one
page only), then the list's own loader reads the page's rows.  Counting: an unfiltered list
counts exactly up to `EXACT_UP_TO` rows; above that PostgreSQL's planner estimate is shown as
"about 1,000,000" (an exact count(*) of a million rows reads the whole index on every page
load, for a figure nobody needs to the unit); a search counts up to `COUNT_CAP` matches and
then says "more than 1,000" (counting half a million matches would cost more than the page).
Page numbers are offsets: a page past the middle of an exactly counted list is read from the
other end, so its last page costs what its first does.  Next and previous are seeks instead:
their links carry the sort key of the page's last (first) row, and the page after it is read
from the index where that key stands (`WHERE (keys) > (last) ORDER BY keys LIMIT n`), so
page 20,000 reached by "Next" costs what page 2 does; a typed page number still works by
offset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, DateTime, Row, Select, func, literal, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from sts.errors import InputError
from sts.vending.i18n import N_

COUNT_CAP = 1_000
EXACT_UP_TO = 200_000  # a whole list larger than this (by the planner's estimate) is "about"
SIZES = (25, 50, 100, 200)
MAX_PAGE = 1_000_000
MAX_QUERY = 100
MAX_KEY = 300  # characters of a seek key (the sort values of one row, as JSON)


@dataclass(frozen=True)
class ListSpec:
    """A list's sort keys: name -> the columns it orders by, the last one unique (the stable
    tie-break, so paging never skips or repeats a row; an index on exactly those columns
    lets the database read a page without sorting), and the key and direction used when
    none is asked for."""

    sorts: Mapping[str, Sequence[ColumnElement[Any]]]
    default: str
    default_desc: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PageRequest:
    q: str = ""
    sort: str = ""
    desc: bool = False
    page: int = 1
    size: int = 50
    after: str = ""  # seek: the rows after this sort key (the "Next" link) ...
    before: str = ""  # ... or before it (the "Previous" link)
    key: tuple[Any, ...] | None = None  # the seek key read back (None: by offset)
    last: bool = False  # the last page of a list counted only "about" (read from its end)

    @classmethod
    def parse(cls, params: Mapping[str, str], spec: ListSpec) -> PageRequest:
        """The paging, sorting and search of a query string, checked: a bad value is refused
        naming the field and the rule."""
        q = params.get("q", "").strip()
        if len(q) > MAX_QUERY:
            raise InputError(N_("a search has at most {n} characters"), field="q", n=MAX_QUERY)
        sort = params.get("sort", "") or spec.default
        if sort not in spec.sorts:
            raise InputError(N_("sort must be one of {sorts}"), field="sort",
                             sorts=", ".join(spec.sorts))
        order = params.get("order", "")
        if order not in ("", "asc", "desc"):
            raise InputError(N_("order must be asc or desc"), field="order")
        desc = order == "desc" if order else (spec.default_desc and sort == spec.default)
        after, before = params.get("after", ""), params.get("before", "")
        if after and before:
            raise InputError(N_("give after or before, not both"), field="after")
        name, text = ("after", after) if after else ("before", before)
        key = read_key(text, spec.sorts[sort], name) if text else None
        last = params.get("last", "")
        if last not in ("", "1"):
            raise InputError(N_("last must be 1 (the last page)"), field="last")
        return cls(q=q, sort=sort, desc=desc, page=_number(params, "page", 1, MAX_PAGE),
                   size=_size(params), after=after, before=before, key=key, last=last == "1")

    @property
    def backwards(self) -> bool:
        """A seek to the rows before the key (the "Previous" link)."""
        return bool(self.before) and not self.after

    def query(self, **change: Any) -> dict[str, str]:
        """This request's query-string parameters, with `change` applied (for links); a
        link seeks only when `change` gives it a key."""
        change.setdefault("after", "")
        change.setdefault("before", "")
        change.setdefault("last", False)
        r = replace(self, **change)
        out = {"q": r.q, "sort": r.sort, "order": "desc" if r.desc else "asc",
               "page": str(r.page), "size": str(r.size), "after": r.after,
               "before": r.before, "last": "1" if r.last else ""}
        return {k: v for k, v in out.items() if v}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def write_key(values: Sequence[Any]) -> str:
    """A row's sort values as the text a link carries ("" when one is NULL: such a row is
    paged by offset, as a row comparison with NULL matches nothing)."""
    if any(v is None for v in values):
        return ""
    return json.dumps([_plain(v) for v in values], separators=(",", ":"))


def read_key(text: str, cols: Sequence[ColumnElement[Any]], name: str) -> tuple[Any, ...]:
    """The sort values a link carried, checked against the sort's columns."""
    def refused() -> InputError:
        return InputError(N_("{name} must be the sort key of a row of this list (follow the "
                             "page's links)"), field=name, name=name)

    if len(text) > MAX_KEY:
        raise refused()
    try:
        values = json.loads(text)
    except ValueError:
        raise refused() from None
    if not isinstance(values, list) or len(values) != len(cols):
        raise refused()
    out: list[Any] = []
    for value, col in zip(values, cols, strict=True):
        try:
            kind = col.type.python_type
        except NotImplementedError:
            kind = str
        try:
            if kind is datetime and isinstance(value, str):
                out.append(datetime.fromisoformat(value))
            elif kind is Decimal and isinstance(value, str | int):
                out.append(Decimal(value))
            elif isinstance(value, kind) and not isinstance(value, bool):  # int, str
                out.append(value)
            else:
                raise ValueError(value)
        except (ValueError, ArithmeticError):
            raise refused() from None
    return tuple(out)


def _number(params: Mapping[str, str], name: str, default: int, top: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= top:
        raise InputError(N_("{what} must be a whole number from 1 to {top:,}"), field=name,
                         what=name, top=top)
    return int(text)


def _size(params: Mapping[str, str]) -> int:
    text = params.get("size", "").strip()
    if not text:
        return 50
    if not text.isdigit() or int(text) not in SIZES:
        raise InputError(N_("size must be one of {sizes}"), field="size",
                         sizes=", ".join(map(str, SIZES)))
    return int(text)


@dataclass
class Page:
    """One page of a list: its rows and where they stand in the whole."""

    rows: list[dict[str, Any]]
    total: int
    exact: bool
    request: PageRequest
    about: bool = False  # total is the database's estimate (a very large whole list)
    filters: dict[str, str] = field(default_factory=dict)
    first_key: str = ""  # the sort key of the first row (the "Previous" link seeks before it)
    last_key: str = ""  # ... and of the last (the "Next" link seeks after it)
    at_end: bool = False  # the rows are the list's last (read from its end)

    @property
    def first(self) -> int:
        return 0 if not self.rows else (self.request.page - 1) * self.request.size + 1

    @property
    def last(self) -> int:
        return 0 if not self.rows else self.first + len(self.rows) - 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.request.size))

    @property
    def has_prev(self) -> bool:
        return self.request.page > 1

    @property
    def has_next(self) -> bool:
        if self.at_end:
            return False
        return self.last < self.total or (not self.exact and len(self.rows) == self.request.size)

    def link(self, **change: Any) -> dict[str, str]:
        """Query parameters for a link to another page, sort or size of this list (`change`
        may also set one of the page's other parameters, a filter)."""
        own = {f.name for f in fields(PageRequest)}
        other = {k: str(v) for k, v in change.items() if k not in own}
        return self.filters | other | self.request.query(
            **{k: v for k, v in change.items() if k in own})


Loader = Callable[[Connection, list[Any]], list[dict[str, Any]]]
Found = list[Row[Any]]  # (id, sort values...) of a page's rows, in order


def fetch(conn: Connection, spec: ListSpec, req: PageRequest, ids: Select[Any], *,
          filtered: bool, load: Loader) -> Page:
    """The page `req` asks for of the list whose ids (with the joins its sort keys need)
    `ids` selects; `load` reads the rows of the ids, which come back in order."""
    cols = [_sortable(conn, c) for c in spec.sorts[req.sort]]
    offset = (req.page - 1) * req.size
    found: Found | None = None
    if filtered:
        # one query answers most searches: the page of the first COUNT_CAP + 1 matches,
        # with their number; only a search matching more is read again over every match
        found, total = _first_matches(conn, ids, cols, req, offset)
        exact = total <= COUNT_CAP
        total = min(total, COUNT_CAP)
        if not exact:
            found = None
    else:
        total, exact = _count_all(conn, ids)
        if req.last:  # its page number as counted ("about": the estimate's)
            req = replace(req, page=min(MAX_PAGE, max(1, -(-total // req.size))))
            offset = (req.page - 1) * req.size
            if not exact:
                found = _from_end(conn, ids, cols, req, 0, req.size)
                total = max(total, offset + len(found))
    if found is None:
        found = (_seek(conn, ids, cols, req) if req.key is not None
                 else _ordered(conn, ids, cols, req, offset, total if exact else None))
    rows = load(conn, [r[0] for r in found]) if found else []
    return Page(rows=rows, total=max(total, offset + len(rows)), exact=exact, request=req,
                about=not filtered and not exact, at_end=req.last and not filtered,
                first_key=write_key(tuple(found[0])[1:]) if found else "",
                last_key=write_key(tuple(found[-1])[1:]) if found else "")


def _count_all(conn: Connection, ids: Select[Any]) -> tuple[int, bool]:
    """The rows of an unfiltered list: exact, or PostgreSQL's estimate when that is large."""
    inner = ids.order_by(None)
    if conn.dialect.name == "postgresql":
        sql = str(inner.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).scalar()
        estimate = int(plan[0]["Plan"]["Plan Rows"]) if plan else 0
        if estimate > EXACT_UP_TO:
            return estimate, False
    return int(conn.scalar(select(func.count()).select_from(inner.subquery())) or 0), True


def _first_matches(conn: Connection, ids: Select[Any], cols: Sequence[ColumnElement[Any]],
                   req: PageRequest, offset: int) -> tuple[Found, int]:
    key = ids.selected_columns[0]
    inner = ids.with_only_columns(key.label("k"), *[c.label(f"s{i}") for i, c in
                                                   enumerate(cols)]).limit(COUNT_CAP + 1)
    sub = inner.subquery()
    sorts = [sub.c[f"s{i}"] for i in range(len(cols))]
    order = [s.desc() if req.desc else s.asc() for s in sorts]
    rows = conn.execute(select(sub.c.k, *sorts, func.count().over().label("n"))
                        .order_by(*order).offset(offset).limit(req.size)).all()
    if rows:
        n = int(rows[0].n)
        return [r[:-1] for r in rows], n  # type: ignore[misc]
    n = int(conn.scalar(select(func.count()).select_from(
        ids.order_by(None).limit(COUNT_CAP + 1).subquery())) or 0)
    return [], n


def _with_keys(ids: Select[Any], cols: Sequence[ColumnElement[Any]]) -> Select[Any]:
    return ids.add_columns(*[c.label(f"s{i}") for i, c in enumerate(cols)])


def _ordered(conn: Connection, ids: Select[Any], cols: Sequence[ColumnElement[Any]],
             req: PageRequest, offset: int, total: int | None) -> Found:
    if total is not None and offset > total // 2:
        # read from the far end: the last pages cost what the first do
        size = max(0, min(req.size, total - offset))
        return _from_end(conn, ids, cols, req, max(0, total - offset - size), size)
    order = [c.desc() if req.desc else c.asc() for c in cols]
    return list(conn.execute(_with_keys(ids, cols).order_by(*order).offset(offset)
                             .limit(req.size)).all())


def _from_end(conn: Connection, ids: Select[Any], cols: Sequence[ColumnElement[Any]],
              req: PageRequest, skip: int, size: int) -> Found:
    """`size` rows after the last `skip`, read from the far end of the index (in the list's
    order)."""
    order = [c.asc() if req.desc else c.desc() for c in cols]
    found = list(conn.execute(_with_keys(ids, cols).order_by(*order).offset(skip)
                              .limit(size)).all())
    found.reverse()
    return found


def _seek(conn: Connection, ids: Select[Any], cols: Sequence[ColumnElement[Any]],
          req: PageRequest) -> Found:
    """The page after (before) the row whose sort key the link carried: read from the index
    where that key stands, never counting the rows before it."""
    assert req.key is not None
    back = req.backwards
    key = tuple_(*[_bound(conn, v, c) for v, c in zip(req.key, cols, strict=True)])
    later, earlier = tuple_(*cols) > key, tuple_(*cols) < key
    # walking the list's order forwards (next) or backwards (previous)
    up = req.desc == back
    cond = (later if up else earlier)
    order = [c.asc() if up else c.desc() for c in cols]
    found = list(conn.execute(_with_keys(ids, cols).where(cond).order_by(*order)
                              .limit(req.size)).all())
    if back:
        found.reverse()
    return found


SQLITE_TIME = "%Y-%m-%d %H:%M:%f"


def _sortable(conn: Connection, col: ColumnElement[Any]) -> ColumnElement[Any]:
    """A sort column as the database compares it.  SQLite keeps a timestamp as text, written
    with or without its fractions of a second, so a row comparison with a bound timestamp
    would compare two spellings of one time: there it sorts by one spelling."""
    if conn.dialect.name == "sqlite" and isinstance(col.type, DateTime):
        return func.strftime(SQLITE_TIME, col)
    return col


def _bound(conn: Connection, value: Any, col: ColumnElement[Any]) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite" and isinstance(value, datetime):
        return func.strftime(SQLITE_TIME, literal(value, DateTime()))
    return literal(value, col.type)


def in_order(rows: Sequence[Any], ids: list[Any], key: str = "id") -> list[dict[str, Any]]:
    """Rows read by id, as plain dicts, in the order of `ids`."""
    by_id = {r._mapping[key]: dict(r._mapping) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def like_pattern(text: str) -> str:
    """`%text%` for LIKE ... ESCAPE '\\', lower case, with the wildcards of the text escaped."""
    safe = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{safe}%"


def digits_of(text: str) -> str | None:
    """The digits of what was typed when it is a number as people write it (spaces, dashes
    between groups), else None: "0410 0000 012" -> "04100000012"."""
    digits = "".join(ch for ch in text if ch not in " -")
    return digits if digits.isdigit() else None
