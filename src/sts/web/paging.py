"""The pages' one helper for paged lists: the query string as the list use cases read it,
and links to another page, sort or size of the list shown (`page_href`, a template global
that the partial `_pager.html` uses)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from sts.vending.listing import Page


def params(request: Request) -> dict[str, str]:
    """The query parameters (the last of each name), for `PageRequest.parse` and filters."""
    return dict(request.query_params.items())


def page_href(listed: Page, /, **change: Any) -> str:
    """`?...` for this list with `change` (page, sort, desc, size) applied; a new sort or
    size starts again at page 1."""
    if ("sort" in change or "size" in change) and "page" not in change:
        change["page"] = 1
    return "?" + urlencode(listed.link(**change))


def sort_href(listed: Page, key: str) -> str:
    """The link of a column header: sort by `key`, or turn the order round when it already is."""
    req = listed.request
    return page_href(listed, sort=key, desc=not req.desc if req.sort == key else False, page=1)
