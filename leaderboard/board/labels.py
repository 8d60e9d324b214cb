"""Labels a participant cannot fake: words reserved for the platform, and spreadsheet cells
that cannot run as formulas.

The leaderboard marks its own rows (the reference baselines) and its own checks (the
container track's verified scenarios) in words. A participant who types the same words into
a method name, a team name or a description could pose as the platform; those words are
refused in every field a participant sets (:func:`check_participant_text`). The platform's
own entries are made by code that does not go through this check.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from leaderboard.board.errors import ServiceError

# Compared after normalisation (:func:`normalise_label`): NFKC, lower case, any run of
# spaces, dashes, underscores, dots or brackets read as one space.
RESERVED_PHRASES = (
    "platform reference",
    "platform entry",
    "platform baseline",
    "reference baseline",
    "reference baselines",
    "baseline reference",
    "official",
    "verified",
    "organizer",
    "organiser",
    "organizers",
    "organisers",
)
# Names (method, team, user) also may not carry the board's own tags, which are shown next
# to a method name: "reference" marks the platform's baselines, "verified" and
# "self-reported scenarios" the track. Descriptions may use these words in prose.
RESERVED_NAME_WORDS = ("reference", "self reported scenarios", "self reported")
NAME_FIELDS = frozenset({"method_name", "team_name", "username", "team"})

# What participants may type into a submission; the display name is the user name.
PARTICIPANT_FIELDS = {
    "method_name": "method name",
    "team_name": "team name",
    "description": "description",
    "username": "user name",
    "team": "team name",
}

RESERVED_WORD_MESSAGE = (
    "The {label} contains {phrase!r}, a phrase reserved for the platform's own entries and "
    "checks. Choose a {label} without it."
)

_SEPARATORS = re.compile(r"[\s\-_.,;:()\[\]{}/|*·•]+", re.UNICODE)
# Characters that render as nothing (zero-width spaces and joiners, soft hyphen, BOM):
# removed, so that "offi\u200bcial" reads as "official".
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))


class ReservedWord(ServiceError):
    code = "reserved_word"


def normalise_label(text: str) -> str:
    """``text`` as compared with the reserved phrases: Unicode NFKC (full-width and other
    compatibility forms folded), invisible characters removed, case folded, separators
    collapsed to single spaces."""
    folded = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).casefold()
    return " " + _SEPARATORS.sub(" ", folded).strip() + " "


def reserved_phrase_in(text: str, *, is_name: bool = False) -> str | None:
    """The reserved phrase ``text`` contains first (as whole words), or None. A name
    (``is_name``) is also refused the board's tags (:data:`RESERVED_NAME_WORDS`)."""
    norm = normalise_label(text)
    found = [
        (norm.find(f" {phrase} "), -len(phrase), phrase)
        for phrase in RESERVED_PHRASES + (RESERVED_NAME_WORDS if is_name else ())
        if f" {phrase} " in norm
    ]
    return min(found)[2] if found else None


def check_participant_text(fields: Mapping[str, Any]) -> None:
    """Refuse participant-set text holding a reserved phrase: a :class:`ReservedWord` error
    (400) naming the field and the phrase. ``fields`` maps field names to their values."""
    for field, value in fields.items():
        if not value:
            continue
        phrase = reserved_phrase_in(str(value), is_name=field in NAME_FIELDS)
        if phrase is not None:
            label = PARTICIPANT_FIELDS.get(field, field.replace("_", " "))
            raise ReservedWord(
                RESERVED_WORD_MESSAGE.format(label=label, phrase=phrase), field=field
            )


# A spreadsheet reads a cell starting with one of these as a formula (or, for tab and
# carriage return, strips them and then may). OWASP's advice on CSV injection: prefix "'".
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula. Numbers (negative ones too) are
    left as they are; text starting with a formula character gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def spreadsheet_safe_rows(rows: Iterable[Iterable[Any]]) -> list[list[Any]]:
    return [[spreadsheet_safe(v) for v in row] for row in rows]
