"""The pure protocol: framing, text hygiene, names and the grammar, without a network."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from chat import protocol
from chat.protocol import (
    Action,
    ChatMessage,
    Error,
    Joined,
    LeaveReason,
    Left,
    LineDecoder,
    LineTooLong,
    PrivateMessage,
    PrivateSent,
    Renamed,
    Reply,
    ServerClosing,
    Unparsed,
)

STREAM = "привет\nhello\r\n\n🙂 emoji and ё\nlast\n".encode()
LINES = ["привет", "hello", "", "🙂 emoji and ё", "last"]


def decode_in_chunks(data: bytes, size: int, max_line_bytes: int = protocol.MAX_LINE_BYTES) -> list:
    decoder = LineDecoder(max_line_bytes)
    lines = []
    for start in range(0, len(data), size):
        lines += decoder.feed(data[start : start + size])
    return lines


# -- framing -----------------------------------------------------------------------


def test_decoding_whole_stream():
    assert LineDecoder().feed(STREAM) == LINES


def test_decoding_one_byte_at_a_time():
    assert decode_in_chunks(STREAM, 1) == LINES


@pytest.mark.parametrize("size", [2, 3, 5, 7, 64])
def test_decoding_any_chunk_size(size):
    assert decode_in_chunks(STREAM, size) == LINES


def test_trailing_data_waits_for_its_line_feed():
    decoder = LineDecoder()
    assert decoder.feed(b"one\ntw") == ["one"]
    assert decoder.pending_bytes == 2
    assert decoder.feed(b"o\n") == ["two"]
    assert decoder.pending_bytes == 0


def test_several_lines_in_one_chunk_come_out_separately():
    assert LineDecoder().feed(b"a\nb\nc\n") == ["a", "b", "c"]


@pytest.mark.parametrize("cut", range(1, len("Жёлтый".encode())))
def test_cyrillic_char_split_across_reads(cut):
    data = "Жёлтый\n".encode()
    decoder = LineDecoder()
    assert decoder.feed(data[:cut]) == []
    assert decoder.feed(data[cut:]) == ["Жёлтый"]


def test_crlf_and_lf_both_end_a_line_but_a_lone_cr_does_not():
    assert LineDecoder().feed(b"a\r\nb\nc\rd\n") == ["a", "b", "c\rd"]


def test_crlf_split_between_reads():
    decoder = LineDecoder()
    assert decoder.feed(b"hi\r") == []
    assert decoder.feed(b"\n") == ["hi"]


def test_long_line_yields_one_error_and_the_next_line_survives():
    limit = 10
    data = b"x" * 25 + b"\nok\n"
    assert LineDecoder(limit).feed(data) == [LineTooLong(limit), "ok"]
    assert decode_in_chunks(data, 1, limit) == [LineTooLong(limit), "ok"]
    assert decode_in_chunks(data, 4, limit) == [LineTooLong(limit), "ok"]


def test_line_of_exactly_the_limit_passes_even_with_crlf_split():
    limit = 10
    data = b"y" * limit + b"\r\n"
    assert LineDecoder(limit).feed(data) == ["y" * limit]
    assert decode_in_chunks(data, 1, limit) == ["y" * limit]
    assert decode_in_chunks(b"y" * (limit + 1) + b"\n", 1, limit) == [LineTooLong(limit)]


def test_endless_bytes_without_newline_never_hold_more_than_the_limit():
    limit = 100
    decoder = LineDecoder(limit)
    seen = []
    for _ in range(1000):
        seen += decoder.feed(b"z" * 37)
        assert decoder.pending_bytes <= limit + 1
    assert seen == [LineTooLong(limit)]  # one error for the line, however long it gets
    assert decoder.feed(b"\nafter\n") == ["after"]


def test_invalid_utf8_becomes_replacement_characters():
    assert LineDecoder().feed(b"ok \xff\xfe \xd0\n") == ["ok \ufffd\ufffd \ufffd"]


def test_bytes_after_the_last_line_feed_are_not_a_line():
    decoder = LineDecoder()
    assert decoder.feed(b"complete\nincomplete") == ["complete"]


# -- text hygiene -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, shown",
    [
        ("\x1b[2J\x1b[Hwiped", "wiped"),  # CSI: clear screen, cursor home
        ("\x1b[31mred\x1b[0m", "red"),  # colours
        ("\x1b]0;title\x07after", "after"),  # OSC window title, BEL-terminated
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC hyperlink, ST-terminated
        ("\x9b2Jc1 csi", "c1 csi"),  # 8-bit CSI
        ("a\rb", "a\u240db"),  # CR would move the cursor to the line start
        ("bell\x07", "bell\u2407"),
        ("nul\x00", "nul\u2400"),
        ("del\x7f", "del\u2421"),
        ("c1\x85", "c1\ufffd"),
        ("bidi \u202eevil", "bidi \ufffdevil"),
        ("isolate \u2066x\u2069", "isolate \ufffdx\ufffd"),
        ("lone \x1b escape", "lone \u241b escape"),
    ],
)
def test_control_characters_are_removed_or_made_visible(text, shown):
    assert protocol.sanitize_text(text) == shown


def test_ordinary_text_is_kept_exactly():
    text = "Привет,\tмир! 🙂 ё Ё «цитата» — 日本語 عربى"
    assert protocol.sanitize_text(text) is text


# -- names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Алиса", "bob", "Дмитрий_2", "a.b-c", "x", "Ж" * 32, "日本", "Ελένη", "Ёж"])
def test_valid_names(name):
    assert protocol.normalize_name(name) == name


def test_names_are_trimmed_and_nfc_normalized():
    decomposed = "и\u0306ка"  # й as и + combining breve
    assert protocol.normalize_name(f"  {decomposed}\t") == "йка"


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 33, "at most 32"),
        ("two words", "U+0020"),
        ("tab\there", "U+0009"),
        ("smile🙂", "U+1F642"),
        ("a\u202eb", "U+202E"),
        ("\u3164", "U+3164"),  # Hangul filler: a "letter" that is blank
        ("a>b", "'>'"),
        ("a*b", "'*'"),
        ("a:b", "':'"),
        ("esc\x1b", "U+001B"),
        ("аlice", "one script"),  # a Cyrillic а among Latin letters
        ("bօb", "one script"),  # an Armenian օ
        ("ɑlice", "U+0251"),  # IPA alpha: phonetic letters only imitate
        ("ᴀlice", "U+1D00"),  # a phonetic small capital
    ],
)
def test_invalid_names_say_what_is_wrong(name, problem):
    with pytest.raises(protocol.InvalidName, match=problem.replace("+", r"\+").replace("*", r"\*")):
        protocol.normalize_name(name)


@pytest.mark.parametrize(
    "taken, other",
    [
        ("alice", "ALICE"),
        ("alice", "Alice"),
        ("Алиса", "АЛИСА"),
        ("alice", "аlice"),  # Cyrillic а
        ("alice", "AIice"),  # capital i
        ("bob", "Ьоb"),  # Cyrillic soft sign and о
        ("root", "r00t"),
        ("paxos", "ραχοs"),  # Greek
        ("alice", "ａｌｉｃｅ"),  # fullwidth
    ],
)
def test_lookalike_names_share_a_key(taken, other):
    assert protocol.names_clash(taken, other)


@pytest.mark.parametrize("name", ["日本語の名前", "김철수", "Ölçü", "Şahin", "Łukasz", "Ψηφίο", "Иван_2", "x.y-z"])
def test_names_of_one_script_and_writing_system_are_fine(name):
    assert protocol.normalize_name(name) == name


@pytest.mark.parametrize("taken, twin", [("alice", "аӏісе"), ("Bob", "Вов"), ("ooh", "օօհ")])
def test_a_name_written_in_another_script_but_looking_the_same_shares_a_key(taken, twin):
    assert protocol.names_clash(protocol.normalize_name(twin), taken)


@pytest.mark.parametrize("one, other", [("alice", "alina"), ("Алиса", "Алина"), ("bob", "bobby"), ("Ёж", "Уж"),
                                        ("Гуля", "Уля"), ("Гена", "Уена"), ("Маша", "Даша"), ("Иван", "Ivan")])
def test_different_names_have_different_keys(one, other):
    assert not protocol.names_clash(one, other)


# Twelve pairs seen online at once before the names used Unicode's confusables data (issue 15).
SEEN_ONLINE_AT_ONCE = [
    ("bob", "b০b"), ("bob", "b०b"), ("bob", "b၀b"),  # Bengali, Devanagari and Myanmar zeros
    ("Alice", "A١ice"),  # an Arabic-Indic one
    ("ä", "ӓ"), ("Chloë", "Сһӏоё"), ("pó", "ρό"),  # accented letters across scripts
    ("ABE", "ᎪᏴᎬ"),  # Cherokee capitals
    ("joe", "ȷoe"), ("ana", "апа"),  # a dotless j; a Cyrillic п
    ("ЕВА", "EBA"), ("Вов", "Bob"),
    ("vova", "νονα"),  # small Greek ν, ο, α: alike in small letters only (their capitals are Ν, Ο, Α)
]


@pytest.mark.parametrize("taken, twin", SEEN_ONLINE_AT_ONCE)
def test_names_that_look_alike_by_unicodes_confusables_share_a_key(taken, twin):
    assert protocol.names_clash(protocol.normalize_name(twin), protocol.normalize_name(taken))


@pytest.mark.parametrize("name", ["नमस्ते", "प्रिया", "தமிழ்", "ক্ষমা", "สมชาย", "Zoë", "Ва́ня"])
def test_names_with_the_combining_marks_of_their_script_are_fine(name):
    assert protocol.normalize_name(name) == unicodedata.normalize("NFC", name)


@pytest.mark.parametrize("name, problem", [
    ("\u0301abc", "U+0301"),  # a mark with no letter before it
    ("x\u0301\u0302\u0303\u0304", "at most 3 in a row"),  # a pile of diacritics
    ("abc\u093e", "U+093E"),  # a Devanagari vowel sign on a Latin letter
    ("a\u034fb", "U+034F"),  # the invisible combining grapheme joiner
    ("a\ufe0fb", "U+FE0F"),  # a variation selector
    ("\u1780\u17b4", "U+17B4"),  # an invisible Khmer vowel
    ("al\u0131\u0307ce", "look like the letter alone"),  # a dotless ı with a dot above: "alice"
    ("\u0237\u0307im", "look like the letter alone"),  # ȷ with a dot above: "jim"
    ("Zx\u0301\u0301", "none twice"),  # the same mark twice in a row
])
def test_combining_marks_out_of_place_are_refused(name, problem):
    with pytest.raises(protocol.InvalidName, match=problem.replace("+", r"\+")):
        protocol.normalize_name(name)


def test_the_skeletons_come_from_unicodes_own_data_file():
    from chat.protocol import names

    data = (Path(names.__file__).parent / "confusables.txt").read_text(encoding="utf-8-sig")
    assert "Unicode Security Mechanisms for UTS #39" in data and "# Version: 18.0.0" in data
    assert len(names._prototypes()) == int(data.rsplit("# total: ", 1)[1].split()[0]) > 6000
    assert names.skeleton("ѕсоре") == names.skeleton("scope") and names.skeleton("m") == "rn"


# -- grammar -----------------------------------------------------------------------------

EVENTS = [
    ChatMessage("Алиса", "привет всем"),
    ChatMessage("bob", "*** carol left (quit)"),  # text that looks like an event stays a message
    ChatMessage("bob", "<alice> fake"),
    Action("Алиса", "машет рукой"),
    PrivateMessage("bob", "только тебе: секрет"),
    PrivateSent("Алиса", "-> *x* y"),
    Joined("Дмитрий"),
    Left("bob", LeaveReason.QUIT, "пока (до завтра)"),
    Left("bob", LeaveReason.QUIT),
    Left("carol", LeaveReason.CONNECTION_LOST),
    Left("x.y", LeaveReason.TOO_SLOW),
    Left("u", LeaveReason.TIMED_OUT),
    Left("u", LeaveReason.SHUTDOWN),
    Renamed("carol", "Карина"),
    ServerClosing(),
    Reply("who", "3 online: bob, carol, Алиса"),
    Error("name-taken", '"bob" is taken'),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: type(event).__name__)
def test_every_event_survives_a_round_trip(event):
    line = protocol.format_event(event)
    assert "\n" not in line
    assert protocol.parse_event(line) == event


def test_encoded_event_is_one_utf8_line():
    assert protocol.encode_event(ChatMessage("Алиса", "ё")) == "<Алиса> ё\n".encode()


@pytest.mark.parametrize("line", ["hello", "", "<> no name", "*** bob danced", "= no topic", "! ", "*** x left (bored)"])
def test_lines_outside_the_grammar_are_unparsed(line):
    assert protocol.parse_event(line) == Unparsed(line)


@pytest.mark.parametrize(
    "text",
    ["*** bob left (quit)", "\r*** admin joined", "\n= who: nobody", "\x1b[2K\r<admin> hi", "\u202e>nimda<"],
)
def test_user_text_cannot_forge_another_kind_of_line(text):
    line = protocol.format_event(ChatMessage("mallory", protocol.sanitize_text(text)))
    event = protocol.parse_event(line)
    assert isinstance(event, ChatMessage) and event.sender == "mallory"
    assert not any(char in line for char in "\r\n\x1b\u202e")


@pytest.mark.parametrize(
    "line, command",
    [
        ("hello", protocol.Say("hello")),
        ("//slash", protocol.Say("/slash")),
        ("/msg Алиса привет, как дела?", protocol.Msg("Алиса", "привет, как дела?")),
        ("/nick Боб", protocol.Nick("Боб")),
        ("/me машет", protocol.Me("машет")),
        ("/who", protocol.Who()),
        ("/help", protocol.Help()),
        ("/quit", protocol.Quit()),
        ("/quit пора спать", protocol.Quit("пора спать")),
    ],
)
def test_commands_round_trip(line, command):
    assert protocol.parse_command(line) == command
    assert protocol.format_command(command) == line


@pytest.mark.parametrize("line", ["", "   "])
def test_blank_lines_are_ignored(line):
    assert protocol.parse_command(line) == protocol.Empty()


@pytest.mark.parametrize("line, code", [("/msg bob", "usage"), ("/msg", "usage"), ("/nick", "usage"),
                                        ("/me", "usage"), ("/dance", "unknown-command"), ("/\x1b[2J", "unknown-command")])
def test_bad_commands_become_errors(line, code):
    command = protocol.parse_command(line)
    assert isinstance(command, protocol.BadCommand)
    assert command.error.code == code
    assert "\x1b" not in protocol.format_event(command.error)


def test_commands_are_case_insensitive():
    assert protocol.parse_command("/WHO") == protocol.Who()
