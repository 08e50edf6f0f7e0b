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
other end, so its last page costs what its first does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from sts.errors import InputError

COUNT_CAP = 1_000
EXACT_UP_TO = 200_000  # a whole list larger than this (by the planner's estimate) is "about"
SIZES = (25, 50, 100, 200)
MAX_PAGE = 1_000_000
MAX_QUERY = 100


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

    @classmethod
    def parse(cls, params: Mapping[str, str], spec: ListSpec) -> PageRequest:
        """The paging, sorting and search of a query string, checked: a bad value is refused
        naming the field and the rule."""
        q = params.get("q", "").strip()
        if len(q) > MAX_QUERY:
            raise InputError(f"a search has at most {MAX_QUERY} characters", field="q")
        sort = params.get("sort", "") or spec.default
        if sort not in spec.sorts:
            raise InputError(f"sort must be one of {', '.join(spec.sorts)}", field="sort")
        order = params.get("order", "")
        if order not in ("", "asc", "desc"):
            raise InputError("order must be asc or desc", field="order")
        desc = order == "desc" if order else (spec.default_desc and sort == spec.default)
        return cls(q=q, sort=sort, desc=desc, page=_number(params, "page", 1, MAX_PAGE),
                   size=_size(params))

    def query(self, **change: Any) -> dict[str, str]:
        """This request's query-string parameters, with `change` applied (for links)."""
        r = replace(self, **change)
        out = {"q": r.q, "sort": r.sort, "order": "desc" if r.desc else "asc",
               "page": str(r.page), "size": str(r.size)}
        return {k: v for k, v in out.items() if v}


def _number(params: Mapping[str, str], name: str, default: int, top: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= top:
        raise InputError(f"{name} must be a whole number from 1 to {top:,}", field=name)
    return int(text)


def _size(params: Mapping[str, str]) -> int:
    text = params.get("size", "").strip()
    if not text:
        return 50
    if not text.isdigit() or int(text) not in SIZES:
        raise InputError(f"size must be one of {', '.join(map(str, SIZES))}", field="size")
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
        return self.last < self.total or (not self.exact and len(self.rows) == self.request.size)

    def link(self, **change: Any) -> dict[str, str]:
        """Query parameters for a link to another page, sort or size of this list."""
        return self.filters | self.request.query(**change)


Loader = Callable[[Connection, list[Any]], list[dict[str, Any]]]


def fetch(conn: Connection, spec: ListSpec, req: PageRequest, ids: Select[Any], *,
          filtered: bool, load: Loader) -> Page:
    """The page `req` asks for of the list whose ids (with the joins its sort keys need)
    `ids` selects; `load` reads the rows of the ids, which come back in order."""
    cols = spec.sorts[req.sort]
    offset = (req.page - 1) * req.size
    found: list[Any] | None = None
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
    if found is None:
        found = _ordered(conn, ids, cols, req, offset, total if exact else None)
    rows = load(conn, found) if found else []
    return Page(rows=rows, total=max(total, offset + len(rows)), exact=exact, request=req,
                about=not filtered and not exact)


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
                   req: PageRequest, offset: int) -> tuple[list[Any], int]:
    key = ids.selected_columns[0]
    inner = ids.with_only_columns(key.label("k"), *[c.label(f"s{i}") for i, c in
                                                   enumerate(cols)]).limit(COUNT_CAP + 1)
    sub = inner.subquery()
    order = [sub.c[f"s{i}"].desc() if req.desc else sub.c[f"s{i}"].asc()
             for i in range(len(cols))]
    rows = conn.execute(select(sub.c.k, func.count().over().label("n")).order_by(*order)
                        .offset(offset).limit(req.size)).all()
    if rows:
        return [r.k for r in rows], int(rows[0].n)
    n = int(conn.scalar(select(func.count()).select_from(
        ids.order_by(None).limit(COUNT_CAP + 1).subquery())) or 0)
    return [], n


def _ordered(conn: Connection, ids: Select[Any], cols: Sequence[ColumnElement[Any]],
             req: PageRequest, offset: int, total: int | None) -> list[Any]:
    if total is not None and offset > total // 2:
        # read from the far end: the last pages cost what the first do
        size = max(0, min(req.size, total - offset))
        far = max(0, total - offset - size)
        order = [c.asc() if req.desc else c.desc() for c in cols]
        found = list(conn.scalars(ids.order_by(*order).offset(far).limit(size)))
        found.reverse()
        return found
    order = [c.desc() if req.desc else c.asc() for c in cols]
    return list(conn.scalars(ids.order_by(*order).offset(offset).limit(req.size)))


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
