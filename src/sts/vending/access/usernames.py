"""Usernames that people cannot confuse: one spelling per name, one script per name.

Operators and Basic credentials are looked up and kept unique by a key: the name NFKC-
normalised (so fullwidth or ligature forms are the plain letters) and case-folded (so
`Demo-Admin` is `demo-admin`).  A name whose letters come from more than one script (Latin
with a Cyrillic `е`, say) is refused: it would look like another operator's name on screen.
"""

from __future__ import annotations

import unicodedata

from sts.errors import InputError

# scripts that are written together in one name (Japanese mixes kana and kanji)
_JOINED = {"HIRAGANA": "JAPANESE", "KATAKANA": "JAPANESE", "CJK": "JAPANESE"}


def username_key(name: str) -> str:
    """What uniqueness and sign-in compare: NFKC, then case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def scripts(name: str) -> set[str]:
    """The scripts of a name's letters (digits and punctuation belong to none)."""
    out = set()
    for ch in name:
        if ch.isalpha():
            word = unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
            out.add(_JOINED.get(word, word))
    return out


def check_username(name: str, *, max_len: int = 60, min_len: int = 1,
                   punctuation: str = "._-") -> str:
    """The name to store (NFKC form), or InputError naming `username`."""
    if not isinstance(name, str):
        raise InputError("username must be text", field="username")
    name = unicodedata.normalize("NFKC", name.strip())
    bare = name.translate({ord(c): None for c in punctuation})
    if not min_len <= len(name) <= max_len or not bare.isalnum():
        allowed = ", ".join(f"'{c}'" for c in punctuation)
        raise InputError(f"username: {min_len}-{max_len} letters, digits or {allowed}",
                         field="username")
    if len(scripts(name)) > 1:
        raise InputError("username mixes letters of different scripts (for example Latin and "
                         "Cyrillic), which look alike on screen; use one script",
                         field="username")
    if len(username_key(name)) > max_len:
        raise InputError(f"username: at most {max_len} characters", field="username")
    return name
