"""The words of the pages and slips in the operator's or utility's language (gettext via Babel).

The catalogues are the `.po` files under `sts/locale/<language>/LC_MESSAGES/messages.po` (in the
source tree, edited by translators); they are compiled in memory when first used, so no
binary `.mo` is kept in the repository.  `./run messages` extracts the template and source
strings (`babel.cfg`) and updates the catalogues.

A language is chosen per utility (its locale's language, `utilities.locale`) and per operator
(`operators.language`, which wins); a customer who is not signed in (the self-service page) is
answered in the first language their browser asks for that we speak, else the utility's.
English is the source language.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from sts.errors import N_ as N_  # the one marker, re-exported for the service's modules
from sts.errors import InputError, StsError

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = {"en": "English", "fr": "Français"}
SOURCE = "en"


def check_language(text: str | None, field: str = "language") -> str:
    code = (text or "").strip().lower()
    if code not in LANGUAGES:
        raise InputError(f"{field} must be one of {', '.join(LANGUAGES)}", field=field)
    return code


@lru_cache(maxsize=8)
def translations(language: str) -> NullTranslations:
    """The compiled catalogue of `language` (the source language, or an unknown one: none)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == SOURCE or not po.is_file():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(buf)


def language_of(locale: str | None, preferred: str | None = None) -> str:
    """The language to speak: the operator's preference, else the utility locale's."""
    if preferred in LANGUAGES:
        return str(preferred)
    lang = (locale or "").split("_", 1)[0].lower()
    return lang if lang in LANGUAGES else SOURCE


def asked_language(header: str | None) -> str | None:
    """The language an Accept-Language header prefers among those we speak (the highest
    weight; the earlier of equals), or None.  The header is the visitor's: only its first
    20 entries are read, and a malformed entry or weight counts as absent, never an error."""
    best: tuple[float, int] | None = None
    chosen = None
    for place, entry in enumerate((header or "")[:1000].split(",")[:20]):
        tag, _, params = entry.partition(";")
        lang = tag.strip().split("-", 1)[0].lower()
        if lang not in LANGUAGES:
            continue  # "*" and the languages we have no words for
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = -1.0
        if not 0 < weight <= 1:  # q=0 means "not this one"; out of range or NaN: ignored
            continue
        if best is None or (weight, -place) > best:
            best, chosen = (weight, -place), lang
    return chosen


def gettext(language: str, text: str) -> str:
    return str(translations(language).gettext(text))


def gettext_for(locale: str | None, preferred: str | None = None) -> Callable[[str], str]:
    """The gettext of the language a reader reads (`language_of`: their preference, else
    the utility locale's)."""
    gettext_: Callable[[str], str] = translations(language_of(locale, preferred)).gettext
    return gettext_


def _same(text: str) -> str:
    return text


def said(exc: StsError, _: Callable[[str], str] = _same,
         money: Callable[[Decimal], str] | None = None) -> str:
    """A refusal in the reader's words (`_`, a catalogue's gettext): its template translated,
    filled with its values, amounts (Decimal values) written the utility's way (`money`);
    the English message when neither changes anything or the translation does not fit the
    values."""
    text = _(exc.template)
    params = exc.params
    if money is not None:
        params = {k: money(v) if isinstance(v, Decimal) else v for k, v in params.items()}
    if text == exc.template and params == exc.params:
        return exc.message
    try:
        return text.format(**params) if params else text
    except (KeyError, IndexError, ValueError):
        return exc.message


def install(env: Any, language: Callable[[], str]) -> None:
    """Jinja's i18n extension in `env`, its `_` and `ngettext` speaking `language()` (the
    language of the request being rendered, read when the template renders)."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(
        gettext=lambda text: gettext(language(), text),
        ngettext=lambda one, many, n: translations(language()).ngettext(one, many, n),
        newstyle=True)
