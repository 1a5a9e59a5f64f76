"""What the console client sends of what the user typed or pasted (bracketed paste brings line breaks)."""

from __future__ import annotations

import threading

from chat import console


class RecordingClient:
    def __init__(self):
        self.sent, self.quit_reason, self.closed = [], None, False

    def send(self, line: str) -> None:
        self.sent.append(line)

    def quit(self, reason: str = "") -> None:
        self.quit_reason = reason

    def close(self) -> None:
        self.closed = True


class TypedConsole:
    asks_again = True

    def __init__(self, *typed):
        self.typed = list(typed)
        self.notes = []

    def read_line(self, prompt: str = "> "):
        return self.typed.pop(0) if self.typed else None

    def note(self, text: str) -> None:
        self.notes.append(text)

    def let_through(self) -> None:
        pass


def chat(*typed) -> RecordingClient:
    client = RecordingClient()
    code = console._chat(client, TypedConsole(*typed), threading.Event(), threading.Event())
    assert code == console.EXIT_OK
    return client


def test_a_pasted_block_of_lines_sends_each_line_and_the_trailing_break_nothing():
    client = chat("строка один\nстрока два\r\nстрока три\n", "ещё\n")
    assert client.sent == ["строка один", "строка два", "строка три", "ещё"]
    assert client.quit_reason == ""  # Ctrl+D at the end: a polite quit


def test_a_quit_inside_a_paste_leaves_with_its_reason_and_sends_nothing_after_it():
    client = chat("привет\n/quit пора\nэто уже не отправится")
    assert client.sent == ["привет"] and client.quit_reason == "пора"


def test_empty_lines_of_a_paste_are_skipped():
    assert chat("\n\nодна\n\n").sent == ["одна"]


def test_the_terminal_view_cleans_every_piece_it_shows():
    from chat import protocol

    event = protocol.parse_event("<b\x07ob> \x1b[2Jhi\x9b\u202e\x08")
    pieces = "".join(text for _, text in console._fragments(event))
    assert not set(pieces) & {"\x1b", "\x07", "\x08", "\x9b", "\u202e"} and "hi" in pieces


def test_tab_completes_a_command_first_then_the_names_online_but_ones_own():
    from chat import protocol

    names = console.NamesOnline()
    for event in (protocol.welcome("Вера", 3), protocol.Reply("who", "3 online: bob, Алиса, Вера"),
                  protocol.Joined("Алексей"), protocol.Renamed("bob", "bobby"), protocol.Left("Алексей", protocol.LeaveReason.QUIT)):
        names.learn(event)
    assert console.completions("/m", names) == [("/msg ", -2), ("/me ", -2)]  # in the order of /help
    assert console.completions("/msg ал", names) == [("Алиса ", -2)]  # case ignored; a space to type the text
    assert console.completions("привет, b", names) == [("bobby", -1)]  # inside a message: no space added
    assert console.completions("/msg В", names) == []  # one's own name is not offered
    assert console.completions("привет ", names) == []
    names.learn(protocol.Renamed("Вера", "Вероника"))
    assert names.mine == "Вероника" and console.completions("Вер", names) == []


def test_what_arrives_before_the_welcome_is_held_within_a_bound_and_the_welcome_kept():
    from chat import protocol

    class Shown:
        def __init__(self):
            self.events = []

        def show(self, event):
            self.events.append(event)

    shown = Shown()
    held = console.HeldEvents(shown)
    held.offer(protocol.welcome("bob", 2))
    for i in range(100_000):  # a server that floods before the name is settled
        held.offer(protocol.ChatMessage("Алиса", str(i)))
    assert held.welcome() == protocol.welcome("bob", 2)
    held.release()
    assert len(shown.events) <= console.CONSOLE_KEEP_EVENTS and shown.events[-1].text == "99999"  # the newest


def test_names_learned_for_tab_are_cleaned_as_what_is_shown():
    from chat import protocol

    names = console.NamesOnline()
    names.learn(protocol.Joined("b\x08o\x07b\x9b"))
    assert all(char.isprintable() for name in names.starting_with("") for char in name)
