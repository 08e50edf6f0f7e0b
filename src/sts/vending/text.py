"""The one rule for text from outside: no control characters, no lone surrogates.

A NUL cannot be stored in a PostgreSQL text column, and a lone surrogate (JSON `"\\ud800"`)
cannot be encoded as UTF-8; either one reaching the database would fail the request with a
server error.  Every face applies this rule at its edge (its string type, form parser, query
strings, credentials) and answers its own 4xx naming the field; the service facade applies it
once more to every argument (`guard`), so nothing a face missed reaches a query.

Tab and newline are allowed only where a field holds free text over several lines
(`multiline=True`).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sts.errors import InputError
from sts.vending.i18n import N_

# C0 controls (tab and newline kept apart) and UTF-16 surrogates
_REFUSED = re.compile(r"[\x00-\x08\x0b-\x1f\ud800-\udfff]")
_REFUSED_LINE = re.compile(r"[\x00-\x1f\ud800-\udfff]")

F = TypeVar("F", bound=Callable[..., Any])
# the refusal's words, marked for the pages' translation (`name`: the field, `found`: the
# character's code point)
RULE = N_("{name} must not contain control characters or lone surrogates (found {found})")


def bad_char(value: str, *, multiline: bool = False) -> str | None:
    """The first refused character of `value`, or None."""
    found = (_REFUSED if multiline else _REFUSED_LINE).search(value)
    return None if found is None else found.group(0)


def describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def message(field: str, char: str) -> str:
    return rule_text(field, describe(char))


def rule_text(field: str, found: str) -> str:
    """The refusal's words, for faces that word their own errors."""
    return RULE.format(name=field, found=found)


def check_text(value: str, field: str, *, multiline: bool = False) -> str:
    """`value` itself, or InputError naming `field`."""
    char = bad_char(value, multiline=multiline)
    if char is not None:
        raise InputError(RULE, field=field, name=field, found=describe(char))
    return value


def strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every (dotted path, text) in a JSON-like value, keys included; iterative, so a deeply
    nested value cannot exhaust the stack."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, sub in item.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    yield name, key
                stack.append((name, sub))
        elif isinstance(item, (list, tuple)):
            for i, sub in enumerate(item):
                stack.append((f"{where}[{i}]", sub))


def first_bad(value: Any, path: str = "") -> tuple[str, str] | None:
    """(field, refused character) of the first string in `value` that breaks the rule; tab
    and newline pass here (a face's own field types decide where they may appear)."""
    for where, text in strings(value, path):
        char = bad_char(text, multiline=True)
        if char is not None:
            return where or "body", char
    return None


def check_all(value: Any, path: str = "") -> None:
    """InputError naming the first string in `value` (nested) that breaks the rule."""
    bad = first_bad(value, path)
    if bad is not None:
        raise InputError(message(*bad), field=bad[0])


def printable(value: str) -> str:
    """`value` with every refused character replaced by `?` (for journals and logs)."""
    return _REFUSED_LINE.sub("?", value)


def guard(method: F) -> F:
    """The service's last guard: every text argument of a use case (nested in bodies too)
    follows the rule before the use case runs, whichever face called it."""
    params = list(inspect.signature(method).parameters)

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        for name, value in [*zip(params[1:], args[1:], strict=False), *kwargs.items()]:
            if isinstance(value, (str, dict, list, tuple)):
                check_all(value, "" if isinstance(value, dict) else name)
        return method(*args, **kwargs)

    return guarded  # type: ignore[return-value]
