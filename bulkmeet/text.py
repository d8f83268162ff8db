"""Text cleanup for anything bulkmeet sends: HTML entities decoded, whitespace normalised.

Registrar systems export titles the way their web pages store them (``Atg Measurement &amp;
Disclosure``, ``Caf&eacute;``, a non-breaking space ``&nbsp;``) and with stray spaces, tabs or
line breaks. A meeting subject is read by people in Outlook and Teams, so it is cleaned once,
here, before it is sent: entities are decoded (twice-encoded ``&amp;amp;`` too, which exports
produce when they escape an already-escaped field), and every run of whitespace, non-breaking
spaces included, becomes one space. Names looked up in a staff directory go through the same
``clean`` so ``Noonan,&nbsp;J`` finds ``Noonan, J``.
"""
from __future__ import annotations

import html
import re
from functools import lru_cache

_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")
_SPACE = re.compile(r"\s+")  # \s covers NBSP (U+00A0) and the other Unicode spaces in str patterns
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))  # zero-width characters
MAX_UNESCAPE_ROUNDS = 3


@lru_cache(maxsize=16384)
def clean(text: str) -> str:
    """``text`` with HTML entities decoded and whitespace collapsed to single spaces, stripped."""
    if "&" in text:
        for _ in range(MAX_UNESCAPE_ROUNDS):
            if not _ENTITY.search(text):
                break
            text = html.unescape(text)
    text = text.translate(_INVISIBLE)
    return _SPACE.sub(" ", text).strip()


def fold(text: str) -> str:
    """``clean`` and case-folded: how names, codes and filter values are compared."""
    return clean(text).casefold()
