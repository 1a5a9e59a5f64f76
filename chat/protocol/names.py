"""Chat names: which are allowed, and which count as the same.

A name is 1-32 letters of one script (with the combining marks of that
script: vowel signs, virama), digits, ``_``, ``-`` and ``.``.  Two names are
the same name when they differ only in case or in characters that look alike,
so nobody can pose as somebody else by swapping one letter for its twin from
another alphabet.  "Look alike" is Unicode's own answer: the skeleton of
Unicode Technical Standard #39, computed from its data file
``confusables.txt`` (version 18.0.0, kept verbatim beside this module).
"""

from __future__ import annotations

import functools
import importlib.resources
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


_MARK_CATEGORIES = frozenset({"Mn", "Mc"})
# Marks that show nothing (Unicode's default-ignorable ones): the grapheme joiner, variation selectors.
_INVISIBLE_MARKS = ((0x034F, 0x034F), (0x17B4, 0x17B5), (0x180B, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
# A dot (or two) above a letter that has one already, or that looks as if it had one, shows nothing new:
# "alı̇ce" (a dotless ı with a dot above) would pass for "alice" (UTS #39, 5.4).
_DOTTED_BASES = frozenset("ijıȷlɨɟ")
_DOTS_ABOVE = frozenset("\u0307\u0308")
MAX_MARKS_IN_A_ROW = 3  # a vowel sign and a nasal mark, say; a pile of diacritics ("zalgo") is refused


def normalize_name(raw: str) -> str:
    """Return the name in its canonical form (NFC, trimmed) or raise InvalidName.

    >>> normalize_name("  Алиса ")
    'Алиса'
    >>> normalize_name("नमस्ते")  # vowel signs and a virama: marks of the name's own script
    'नमस्ते'
    """
    name = unicodedata.normalize("NFC", raw.strip(" \t"))
    if not name:
        raise InvalidName("a name can't be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidName(f"a name has at most {MAX_NAME_CHARS} characters")
    base, marks, previous = None, 0, ""
    for char in name:
        if unicodedata.category(char) in _MARK_CATEGORIES:
            marks += 1
            if not _mark_fits(char, base, marks) or char == previous:
                raise InvalidName(f"{_describe_char(char)} is not allowed there: a name's combining marks follow "
                                  f"a letter of their script, at most {MAX_MARKS_IN_A_ROW} in a row, none twice")
            if char in _DOTS_ABOVE and base.casefold() in _DOTTED_BASES:
                raise InvalidName(f"{_describe_char(char)} is not allowed after '{base}': it would look like the letter alone")
            previous = char
            continue
        if not _is_name_char(char):
            raise InvalidName(f"{_describe_char(char)} is not allowed in a name")
        base, marks, previous = char, 0, ""
    scripts = {_script(char) for char in name if unicodedata.category(char) in _LETTER_CATEGORIES}
    if len(scripts) > 1:
        raise InvalidName(f"a name's letters must come from one script, not {' and '.join(sorted(scripts)).lower()}")
    return name


def _mark_fits(mark: str, base: str | None, marks_in_a_row: int) -> bool:
    """A combining mark is allowed after a letter, of the letter's script or a common diacritic ("COMBINING ...")."""
    if base is None or unicodedata.category(base) not in _LETTER_CATEGORIES or marks_in_a_row > MAX_MARKS_IN_A_ROW:
        return False
    if any(low <= ord(mark) <= high for low, high in _INVISIBLE_MARKS):
        return False
    script = unicodedata.name(mark, "UNKNOWN").split()[0]
    return script == "COMBINING" or script == _script(base) or (_script(base) == "EAST ASIAN" and script in _EAST_ASIAN)


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


# One look-alike that Unicode's data leaves out and the name rules add: small Cyrillic "п" looks
# like Latin "n" in most fonts, while confusables.txt maps it to Greek "π" only ("апа" would pass
# for "ana").  Folding too much only refuses a rare harmless name; too little lets somebody pose.
_SUPPLEMENT = str.maketrans({"п": "n"})


@functools.cache
def _prototypes() -> dict[int, str]:
    """confusables.txt as a translation table: each character to the prototype it is confusable with."""
    table: dict[int, str] = {}
    text = importlib.resources.files("chat.protocol").joinpath("confusables.txt").read_text(encoding="utf-8-sig")
    for line in text.splitlines():
        data = line.partition("#")[0].strip()
        if data:
            source, target, _ = (field.strip() for field in data.split(";"))
            table[int(source, 16)] = "".join(chr(int(code, 16)) for code in target.split())
    return table


def skeleton(text: str) -> str:
    """The UTS #39 skeleton: NFD, each character to its prototype, NFD again.

    Two strings with the same skeleton are visually confusable.

    >>> skeleton("раураl") == skeleton("paypal")  # Cyrillic р, а, у
    True
    """
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).translate(_prototypes()))


def name_key(name: str) -> str:
    """The key a name is filed under: case folded away, and look-alikes in small letters.

    >>> name_key("Алиса") == name_key("АЛИСА")
    True
    >>> name_key("bob") == name_key("b০b")  # a Bengali zero
    True
    """
    return name_keys(name)[0]


def name_keys(name: str) -> tuple[str, str]:
    """The keys under which a name is unique: two names that share one can't be online at once.

    UTS #39 skeletons are case-sensitive (capital I is confusable with l,
    small i is not; small Greek ν with v, its capital Ν with N), so a name
    has two: the skeleton of its small letters, and that of its capitals
    (case folded after).  The first is :func:`name_key`; the second is
    tagged, so it is only ever compared with other names' second keys.

    >>> names_clash("Alice", "AIice"), names_clash("vova", "νονα"), names_clash("Bob", "Вов")
    (True, True, True)
    """
    small = unicodedata.normalize("NFKC", name).casefold().translate(_SUPPLEMENT)
    return (skeleton(skeleton(small).casefold()).casefold(),
            "capitals:" + skeleton(small.upper()).casefold())  # one skeleton: Г ~ Γ and У ~ Y, never г ~ у


def names_clash(one: str, other: str) -> bool:
    """Whether two names share a key: they look alike, and only one of them may be online."""
    return bool(set(name_keys(one)) & set(name_keys(other)))
