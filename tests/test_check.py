"""``python -m chat check``: the scorecards of our server, the textbook one, two real submissions, and broken fakes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chat.lab.checker import Dialect, Verdict, check_command, check_server
from chat.lab.checker.dialect import unescape
from chat.lab.checker.peers import Crowd, token
from chat.lab.naive import NaiveServer
from tests import fake_servers

STUDENT_SERVERS = Path(__file__).resolve().parent.parent.parent / "shared" / "student-servers"
CONVERSATION = ["register", "broadcast", "two-in-one", "long-message", "cyrillic-bytes", "join-leave", "reset-mid-line",
                "invalid-utf8", "stalled-reader", "light-load", "latency", "churn"]
PROCESS = ["long-line-memory", "threads-left", "sigint"]
RUN_BOUND_S = 75  # "the whole run stays under about a minute", with room for a loaded CI machine

pytestmark = pytest.mark.slow


def verdicts(card) -> dict[str, str]:
    return card.verdicts()


def expect(passing: str = "", **others: str) -> dict[str, str]:
    """Every check PASS unless named: ``expect(latency="FAIL")``."""
    found = {check: "PASS" for check in CONVERSATION + PROCESS}
    found.update({check.replace("_", "-"): verdict for check, verdict in others.items()})
    return found


# -- the pieces -------------------------------------------------------------------------------------


def test_templates_typed_in_a_shell_get_their_newlines():
    assert unescape(r"{name}\n") == "{name}\n"
    assert unescape(r"{name}: {text}\r\n") == "{name}: {text}\r\n"
    assert unescape(r"a\\n") == "a\\n"
    assert Dialect(name_format="{name}").name("Вера") == "Вера".encode()


@pytest.mark.parametrize("bad", [{"name_format": "hello"}, {"message_format": "{name}"}, {"message_format": "{text}{who}"}])
def test_a_template_without_its_field_is_refused(bad):
    with pytest.raises((ValueError, KeyError)):
        Dialect(**bad)


def test_a_token_is_found_when_a_chunk_cuts_it_in_two(server):
    with Crowd(server.server_address, Dialect()) as crowd:
        ann, bob = crowd.join(["ann", "bob"])
        mark, text = ann.message("разрезанный")
        line = Dialect().message(ann.name, text)
        for piece in (line[:5], line[5:14], line[14:]):  # the token itself in two sends
            ann.send(piece)
            time.sleep(0.05)
        assert crowd.wait_for_tokens({bob: {mark}}, 5)
        assert bob.lines_with(mark) == [f"<{ann.name}> {text}"]
    assert token(3, 17) == "ck03m00017k"


# -- whole scorecards ------------------------------------------------------------------------------------


def test_our_server_passes_every_check_through_its_process():
    started = time.monotonic()
    card = check_command([sys.executable, "-m", "chat", "server", "--port", "{port}"])
    assert verdicts(card) == expect(), card.table()
    assert time.monotonic() - started < RUN_BOUND_S
    assert "15 passed" in card.table()


def test_the_textbook_server_fails_framing_cyrillic_stalled_and_nagle():
    with NaiveServer() as server:
        card = check_server(server.server_address)
    found = verdicts(card)
    by_id = {result.id: result for result in card.results}
    # Its list of clients is changed by several threads without a lock: under churn it breaks in some runs
    # and not in others (seen in the report's runs too), so either verdict is its true behaviour, with the cause.
    assert found.pop("churn") == "PASS" or "lost" in by_id["churn"].evidence or "could not join" in by_id["churn"].evidence
    expected = expect(two_in_one="FAIL", long_message="FAIL", cyrillic_bytes="FAIL", stalled_reader="FAIL",
                      latency="FAIL", long_line_memory="SKIP", threads_left="SKIP", sigint="SKIP")
    del expected["churn"]
    assert found == expected, card.table()
    assert "Nagle" in by_id["latency"].evidence and "TCP_NODELAY" in by_id["latency"].hint
    assert "sender was disconnected" in by_id["cyrillic-bytes"].evidence
    assert card.failed


def test_the_command_line_prints_the_scorecard_and_exits_1_on_a_failure(tmp_path):
    with NaiveServer() as server:
        host, port = server.server_address
        run = subprocess.run([sys.executable, "-m", "chat", "check", f"{host}:{port}", "--json", str(tmp_path / "card.json"),
                              "--only", "register,broadcast,two-in-one"], capture_output=True, text=True, timeout=RUN_BOUND_S)
    assert run.returncode == 1, run.stderr
    assert re.search(r"two messages in one send\s+FAIL", run.stdout)
    assert "How to fix:" in run.stdout and "checking: users register" in run.stderr  # progress on stderr
    data = json.loads((tmp_path / "card.json").read_text(encoding="utf-8"))
    assert data["failed"] is True and [check["id"] for check in data["checks"]] == ["register", "broadcast", "two-in-one"]


def test_the_command_line_names_an_unknown_check():
    run = subprocess.run([sys.executable, "-m", "chat", "check", "127.0.0.1:9", "--only", "telepathy"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "no such check: telepathy" in run.stderr


def test_the_command_line_refuses_a_bad_target():
    run = subprocess.run([sys.executable, "-m", "chat", "check", "nowhere"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "HOST:PORT" in run.stderr


# -- the real submissions -----------------------------------------------------------------------------------


def student_server(folder: Path, name: str, port_line: str, new_line: str) -> list[str]:
    """A copy of a submission that listens on the port given as its first argument (the original is never edited)."""
    if not (STUDENT_SERVERS / name).exists():
        pytest.skip(f"the student submissions are not beside this clone ({STUDENT_SERVERS} is missing)")
    copy = folder / name
    shutil.copy(STUDENT_SERVERS / name, copy)
    source = copy.read_text(encoding="utf-8")
    assert port_line in source
    copy.write_text(source.replace(port_line, new_line), encoding="utf-8")
    return [sys.executable, str(copy), "{port}"]


@pytest.fixture(scope="module")
def card_a(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submission-a")
    command = student_server(folder, "a_server.py", "port=8000", "port=int(__import__('sys').argv[1])")
    return check_command(command, Dialect(name_format="{name}"))


@pytest.fixture(scope="module")
def card_b(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submission-b")
    command = student_server(folder, "b_server.py", "PORT = 9090", "PORT = int(__import__('sys').argv[1])")
    return check_command(command, Dialect(name_format="{name}", message_format="{name}: {text}\n", prompt=True))


@pytest.mark.timeout(300)
def test_submission_a_as_its_code_reads(card_a):
    """a_server.py: recv(1024) relayed as "[NAME] TEXT" to the others, from the sender's thread, no lock, no TCP_NODELAY.

    So: the sender's name is on the first piece only (two-in-one, long message), half a letter raises
    UnicodeDecodeError and drops the sender, a blocking send() to the stalled user holds up its sender's
    thread, and Nagle's algorithm delays small writes.  It closes the sockets on Ctrl+C without a word.
    """
    found = verdicts(card_a)
    # The unlocked list: a message is skipped only when a leave lands inside a broadcast's loop, a race
    # the churn may or may not hit; when it does, the evidence names the loss.
    churn = found.pop("churn")
    expected = expect(two_in_one="FAIL", long_message="FAIL", cyrillic_bytes="FAIL", stalled_reader="FAIL",
                      latency="FAIL", sigint="WARN")
    expected.pop("churn")
    assert found == expected, card_a.table()
    churn_result = next(result for result in card_a.results if result.id == "churn")
    assert churn == "PASS" or "lost" in churn_result.evidence, card_a.table()
    assert card_a.seconds < RUN_BOUND_S


@pytest.mark.timeout(300)
def test_submission_b_as_its_code_reads(card_b):
    """b_server.py: asks for a nickname, relays the raw bytes to everybody, the sender too.

    Relaying bytes untouched keeps the client's lines and letters whole (framing and Cyrillic pass),
    but it echoes, a blocking send() to the stalled user holds up the sender, no TCP_NODELAY, and on
    EOF recv() returns b"" forever: the thread of every user who left spins and never announces the
    leave, so threads pile up.  Once dozens spin, the one thread that accepts and registers users
    starves: the last checks can't even join, and when a user that gave up waiting is closed before
    its name, the accept loop's send() raises and the main thread dies; the spinning non-daemon
    threads keep the process alive until Ctrl+C interrupts the interpreter's wait for them (exit code 1).
    """
    found = verdicts(card_b)
    starved = {check: found.pop(check) for check in ("light-load", "churn", "long-line-memory", "sigint")}
    expected = expect(broadcast="WARN", join_leave="FAIL", stalled_reader="FAIL", latency="FAIL", threads_left="FAIL")
    assert found == {check: verdict for check, verdict in expected.items() if check not in starved}, card_b.table()
    by_id = {result.id: result for result in card_b.results}
    assert "came back to its sender" in by_id["broadcast"].evidence
    assert "for its leave" in by_id["join-leave"].evidence
    # How far the spinning threads starve the rest depends on the machine and its load: the relaying may
    # keep up with the light load or not; joining may fail (then the checks after it fail to join); Ctrl+C
    # finds the accept loop alive (the non-daemon threads keep the process up) or already dead (it exits,
    # code 1, on the interpreter's interrupted wait for them).  Each verdict names its cause.
    starving = re.compile(r"lost|could not|no prompt|closed")  # messages lost, or users unable to join
    for check in ("light-load", "churn", "long-line-memory"):
        assert starved[check] == "PASS" or starving.search(by_id[check].evidence), card_b.table()
    assert (starved["sigint"] == "FAIL" and "still running" in by_id["sigint"].evidence
            or starved["sigint"] == "WARN" and "exit code 1" in by_id["sigint"].evidence), card_b.table()
    assert card_b.seconds < RUN_BOUND_S


def test_the_two_submissions_differ_where_their_code_does(card_a, card_b):
    """The echo is b's alone, and so is keeping lines whole; a's threads end, b's spin: side by side."""
    a_found, b_found = verdicts(card_a), verdicts(card_b)
    assert (a_found["broadcast"], b_found["broadcast"]) == ("PASS", "WARN")
    assert (a_found["two-in-one"], b_found["two-in-one"]) == ("FAIL", "PASS")
    assert (a_found["cyrillic-bytes"], b_found["cyrillic-bytes"]) == ("FAIL", "PASS")
    assert (a_found["threads-left"], b_found["threads-left"]) == ("PASS", "FAIL")


# -- servers that misbehave on purpose ----------------------------------------------------------------------


@pytest.mark.parametrize("fake, evidence", [
    (fake_servers.NeverAnswers, "never reached"),
    (fake_servers.ClosesAtOnce, "closed"),
    (fake_servers.AnswersGarbage, "never reached"),
    # megabytes without a newline: how far registration got before the checker stopped reading depends on timing
    (fake_servers.MegabyteLines, ("never reached", "while registering")),
])
def test_a_broken_server_gets_clear_fails_within_the_time_bound(fake, evidence):
    started = time.monotonic()
    with fake() as server:
        card = check_server(server.server_address)
    elapsed = time.monotonic() - started
    found = verdicts(card)
    assert all(found[check] == "FAIL" for check in CONVERSATION if check != "register"), card.table()
    said = " ".join(result.evidence for result in card.results)
    assert any(words in said for words in ((evidence,) if isinstance(evidence, str) else evidence)), card.table()
    assert elapsed < 20, f"{elapsed:.0f} s"
    assert all(result.verdict is Verdict.SKIP for result in card.results if result.id in PROCESS)
