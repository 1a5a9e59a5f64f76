"""Chat names: which are allowed, and which count as the same.

A name is 1-32 letters of one script, digits, ``_``, ``-`` and ``.``.  Two
names are the same name when they differ only in case or in letters that
look alike, so nobody can pose as somebody else by swapping one letter for
its twin from another alphabet.  The rules follow the spirit of Unicode's
security guidelines for identifiers (UTS #39) with a small, readable subset
of its data.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 32
NAME_PUNCTUATION = "_-."
NAME_RULES = (
    f"1-{MAX_NAME_CHARS} characters: letters of one script, digits, "
    f"and {' '.join(NAME_PUNCTUATION)}"
)


class InvalidName(ValueError):
    """A name that breaks the naming rules; the message says which one."""


_LETTER_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})
# Letters of category Lo that render as blank space.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# Latin-looking letters from phonetic notation (ɑ, ɡ, ᴀ, ʟ, ...): there only to imitate.
_PHONETIC_BLOCKS = ((0x0250, 0x02FF), (0x1D00, 0x1DBF))
# Scripts that are written together (Japanese, Korean, Chinese): one script for this rule.
_EAST_ASIAN = frozenset({"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "HANGUL", "BOPOMOFO"})


def normalize_name(raw: str) -> str:
    """Return the name in its canonical form (NFC, trimmed) or raise InvalidName.

    >>> normalize_name("  Алиса ")
    'Алиса'
    """
    name = unicodedata.normalize("NFC", raw.strip(" \t"))
    if not name:
        raise InvalidName("a name can't be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidName(f"a name has at most {MAX_NAME_CHARS} characters")
    for char in name:
        if not _is_name_char(char):
            raise InvalidName(f"{_describe_char(char)} is not allowed in a name")
    scripts = {_script(char) for char in name if unicodedata.category(char) in _LETTER_CATEGORIES}
    if len(scripts) > 1:
        raise InvalidName(f"a name's letters must come from one script, not {' and '.join(sorted(scripts)).lower()}")
    return name


def _is_name_char(char: str) -> bool:
    if char in NAME_PUNCTUATION:
        return True
    if char in _BLANK_LETTERS or any(low <= ord(char) <= high for low, high in _PHONETIC_BLOCKS):
        return False
    category = unicodedata.category(char)
    return category in _LETTER_CATEGORIES or category == "Nd"


def _script(char: str) -> str:
    """The script of a letter, from its Unicode name ("CYRILLIC SMALL LETTER A" -> "CYRILLIC")."""
    word = unicodedata.name(char, "UNKNOWN").split()[0]
    return "EAST ASIAN" if word in _EAST_ASIAN else word


def _describe_char(char: str) -> str:
    label = unicodedata.name(char, "")
    shown = f"'{char}' " if char.isprintable() and not char.isspace() else ""
    return f"{shown}U+{ord(char):04X}{' ' + label if label else ''}"


# Characters that look like another one, mapped (after casefolding) to one
# representative, so that "аlice" with a Cyrillic "а", or "AIice" with a capital
# I, can't pose as "alice".  A small, hand-made subset of Unicode's confusables
# for Cyrillic, Greek, Armenian and digits: i, l, I and 1 are one class, 0 and O
# another.  Folding too much only refuses a rare harmless name; too little lets
# somebody impersonate.
_LOOKALIKE_PAIRS = {
    "авсԁеһјкмнорԛѕтԝхуүьё": "abcdehjkmhopqstwxyybe",  # Cyrillic
    "αβεζηκμνορτυχ": "abezhkmvoptux",  # Greek
    "օսոհց": "ounhg",  # Armenian
    "iіїιıӏ1": "lllllll",  # the i / l / 1 class
    "0": "o",
}
_LOOKALIKES = str.maketrans(
    {
        source: target
        for sources, targets in _LOOKALIKE_PAIRS.items()
        for source, target in zip(sources, targets)
        if source != target
    }
)


def name_key(name: str) -> str:
    """The key under which a name is unique: case and lookalikes folded away.

    Two names with the same key can't be online at once.

    >>> name_key("Alice") == name_key("ALICE") == name_key("AIice")  # a capital i
    True
    >>> name_key("Алиса") == name_key("АЛИСА")
    True
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    return unicodedata.normalize("NFKC", folded).translate(_LOOKALIKES)
