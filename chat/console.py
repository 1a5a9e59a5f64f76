"""The console client: ``python -m chat client [NAME] [--host H] [--port P]``.

On a terminal it uses prompt_toolkit, so lines arriving while you type appear
above your input line instead of garbling it.  With piped stdin it works line
by line, which is how tests and scripts drive it.

Exit codes: 0 after /quit, Ctrl+D (end of input) or Ctrl+C; 1 when the
server goes away; 2 when it can't be reached.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import selectors
import sys
import threading
import time
from collections.abc import Callable, Iterable

from chat import protocol
from chat.tcp.client import ChatClient, Disconnected, NameRefused

EXIT_OK, EXIT_SERVER_GONE, EXIT_UNREACHABLE, EXIT_NAME_REFUSED = 0, 1, 2, 3
EXIT_CODES = """exit codes: 0 you left, or the server shut down and said so; 1 the connection was lost after you
joined; 2 no chat server could be reached there (nothing listens, nothing answers, or it is not a chat
server); 3 the name was refused and input is not a terminal (a terminal asks for another name)"""
STDIN_READ_BYTES = 4096
# Lines waiting to be shown on a terminal, at most: past this the receive thread waits, so it stops
# reading the socket, TCP pushes back, and the server's own bound on a slow reader applies.
MAX_WAITING_LINES = 1000
MAX_WAITING_BYTES = 1 << 20
# The latest lines shown, kept to draw them again after the terminal is resized (each cut to a screenful).
SHOWN_KEPT_LINES, SHOWN_KEPT_CHARS = 200, 16 * 1024
# What the console's client remembers: it shows each event as it comes and keeps no history.
CONSOLE_KEEP_EVENTS, CONSOLE_KEEP_BYTES = 100, 1 << 20

_STYLES = {  # prompt_toolkit style for each kind of line
    protocol.PrivateMessage: "ansimagenta",
    protocol.PrivateSent: "ansimagenta",
    protocol.Action: "italic",
    protocol.Joined: "ansibrightblack",
    protocol.Left: "ansibrightblack",
    protocol.Renamed: "ansibrightblack",
    protocol.ServerClosing: "ansiyellow",
    protocol.Reply: "ansicyan",
    protocol.Error: "ansired",
}


def _fragments(event: protocol.ServerEvent) -> list[tuple[str, str]]:
    """A line in styled pieces: whose message it is, in bold, then the text.

    Text can't carry a style (its escape sequences are removed), so a message
    long enough to wrap can't make its second row look like another user's line.
    Everything is cleaned as the server cleans text (:func:`chat.protocol.sanitize_text`):
    a hostile server, or anybody on the unencrypted path, can't drive the terminal.
    """
    style = _STYLES.get(type(event), "")
    if isinstance(event, _WITH_SENDER):
        head = protocol.format_event(dataclasses.replace(event, text=""))
        return [(f"{style} bold".strip(), protocol.sanitize_text(head)), (style, protocol.sanitize_text(event.text))]
    return [(style, protocol.sanitize_text(protocol.format_event(event)))]


_WITH_SENDER = (protocol.ChatMessage, protocol.Action, protocol.PrivateMessage, protocol.PrivateSent)
COMMANDS = tuple(usage.split()[0] for usage, _ in protocol.COMMAND_HELP if usage.startswith("/") and usage[1] != "/")
TIME_STYLE = "ansibrightblack"


def clock_prefix() -> str:
    """The local time in front of a line shown: ``14:05 ``."""
    return time.strftime("%H:%M ")


class NamesOnline:
    """Who is online, as far as the lines seen tell: for Tab completion.

    Learned from the ``/who`` replies (the console asks once, at the welcome),
    joins, leaves, renames and the senders of messages.  Any thread may
    :meth:`learn`; :meth:`starting_with` reads a copy.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: set[str] = set()
        self.mine: str | None = None

    def learn(self, event) -> None:
        event = _cleaned(event)  # a hostile server's names must not reach the input line raw
        with self._lock:
            match event:
                case protocol.Reply(topic="welcome"):
                    self.mine = protocol.welcome_name(event)
                case protocol.Reply(topic="who"):
                    self._names |= set(protocol.who_names(event))
                case protocol.Joined(name=name):
                    self._names.add(name)
                case protocol.Left(name=name):
                    self._names.discard(name)
                case protocol.Renamed(old=old, new=new):
                    self._names.discard(old)
                    self._names.add(new)
                    if old == self.mine:
                        self.mine = new
                case protocol.ChatMessage(sender=name) | protocol.Action(sender=name) | protocol.PrivateMessage(sender=name):
                    self._names.add(name)

    def starting_with(self, prefix: str) -> list[str]:
        """The others' names that start with ``prefix`` (case ignored), sorted."""
        with self._lock:
            names = self._names - {self.mine}
        folded = prefix.casefold()
        return sorted(name for name in names if name.casefold().startswith(folded))


def _cleaned(event):
    """The event with every text field made harmless, as what is shown is (:func:`chat.protocol.sanitize_text`)."""
    changes = {field.name: protocol.sanitize_text(value) for field in dataclasses.fields(event)
               if isinstance(value := getattr(event, field.name), str)}
    return dataclasses.replace(event, **changes)


def completions(text: str, names: NamesOnline) -> Iterable[tuple[str, int]]:
    """What Tab may put in place of the word before the cursor: (completion, how far back it starts).

    The first word of a line starting with "/" is a command; any other word is a name online.
    """
    word = text.rpartition(" ")[2]
    if " " not in text and text.startswith("/"):
        return [(command + " ", -len(word)) for command in COMMANDS if command.startswith(word)]
    if not word:
        return []
    end = " " if text.startswith(("/msg ", "/nick ")) and text.count(" ") == 1 else ""
    return [(name + end, -len(word)) for name in names.starting_with(word)]


class PipeConsole:
    """Line-by-line I/O for piped stdin; a closed connection interrupts the read."""

    asks_again = False  # a refused name ends the client: the next input line is a message, not a name

    def __init__(self, clock: bool = False) -> None:
        self.clock = clock
        self._decoder = protocol.LineDecoder(max_line_bytes=1 << 20)
        self._lines: list[str] = []
        self._wake_r, self._wake_w = os.pipe()
        self._eof = False

    def show(self, event: protocol.ServerEvent) -> None:
        shown = protocol.sanitize_text(protocol.format_event(event))  # what the server sent, made harmless
        print(f"{clock_prefix()}{shown}" if self.clock else shown, flush=True)

    def note(self, text: str) -> None:
        print(protocol.sanitize_text(text), file=sys.stderr, flush=True)

    def interrupt(self) -> None:
        os.write(self._wake_w, b"x")

    def read_line(self, prompt: str = "") -> str | None:
        """The next input line, or None at end of input or after :meth:`interrupt`."""
        if os.name == "nt":  # Windows' select() takes sockets only: read plainly; a lost server shows at the next line
            line = sys.stdin.readline()
            return line.rstrip("\r\n") if line else None
        # select(), not the default epoll: stdin may be a regular file (`< lines.txt`), which epoll refuses.
        with selectors.SelectSelector() as selector:
            selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._lines and not self._eof:
                ready = [key.fd for key, _ in selector.select()]
                if self._wake_r in ready:
                    return None
                data = os.read(sys.stdin.fileno(), STDIN_READ_BYTES)
                if not data:  # the end: a last line without a newline still counts
                    self._eof = True
                    data = b"\n" if self._decoder.pending_bytes else b""
                self._lines += [line for line in self._decoder.feed(data) if isinstance(line, str)]
        return self._lines.pop(0) if self._lines else None

    def let_through(self) -> None:
        """Nothing is held back here: a print waits for stdout, as any pipe does."""

    def close(self) -> None:
        os.close(self._wake_r)
        os.close(self._wake_w)


class TerminalConsole:
    """prompt_toolkit I/O: incoming lines print above the line being typed.

    One prompt stays on screen from the first :meth:`read_line` to
    :meth:`close`, so the terminal stays in raw mode: a key typed at any
    moment is input, never echoed by the terminal on its own.  Enter hands the
    line to :meth:`read_line` and leaves a copy of it above the prompt.

    Only the main thread writes to the terminal.  The receive thread queues
    each line and wakes the prompt's event loop, which erases the prompt,
    writes every waiting line and draws the prompt again below them.  (A line
    printed from the receive thread races with the drawing of the prompt and
    can end up glued to a stale ``> ``.)  prompt_toolkit's own
    ``patch_stdout`` would print from the receive thread, into that race: the
    queue and the wake-up are kept by hand for that reason.
    """

    asks_again = True  # a refused name: the user types another
    completes_names = True  # Tab completes commands and the names online

    def __init__(self, clock: bool = True, names: NamesOnline | None = None) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import Completer, Completion
        from prompt_toolkit.patch_stdout import patch_stdout
        from prompt_toolkit.styles import default_ui_style

        self.clock = clock
        self.names = names or NamesOnline()
        known = self.names

        class CommandsAndNames(Completer):
            def get_completions(self, document, complete_event):
                for completion, start in completions(document.text_before_cursor, known):
                    yield Completion(completion, start_position=start)

        from prompt_toolkit.output import create_output
        from prompt_toolkit.shortcuts import CompleteStyle

        output = create_output()
        # No cursor position reports: an answer measured before lines were printed above the prompt
        # would be stale, and the prompt would be drawn too low, scrolling lines off the top.
        output.enable_cpr = False
        self._session = PromptSession(erase_when_done=True, output=output, completer=CommandsAndNames(),
                                      complete_while_typing=False, complete_style=CompleteStyle.READLINE_LIKE)
        self._session.default_buffer.accept_handler = self._accept
        self._session.app.before_render += self._redraw_if_resized
        self._size = None  # the terminal's size at the last drawing
        self._shown: collections.deque[list[tuple[str, str]]] = collections.deque(maxlen=SHOWN_KEPT_LINES)
        self._style = default_ui_style()
        self._loop = asyncio.new_event_loop()  # runs while read_line() waits; the prompt lives in it
        self._prompt: asyncio.Task | None = None
        self._typed: collections.deque[str] = collections.deque()  # lines entered, not yet read
        self._line_entered = asyncio.Event()
        self._waiting: collections.deque[tuple[list[tuple[str, str]], int]] = collections.deque()  # lines to show, sizes
        self._waiting_bytes = 0
        self._room = threading.Condition()  # the receive thread waits on it while too much waits to be shown
        self._closed = False
        self._interrupted = threading.Event()
        self._patch = patch_stdout(raw=True)  # stray writes (a warning, say) also go above the prompt
        self._patch.__enter__()

    def show(self, event: protocol.ServerEvent) -> None:
        self._post([(TIME_STYLE, clock_prefix()), *_fragments(event)] if self.clock else _fragments(event))

    def note(self, text: str) -> None:
        self._post([("", protocol.sanitize_text(text))])

    def _post(self, fragments: list[tuple[str, str]]) -> None:
        """Any thread: queue a line and wake the loop to print it.

        While the queue is full (the terminal takes nothing, or the user is not
        at the prompt), the caller waits: the receive thread stops reading.
        """
        size = sum(len(text) for _, text in fragments)
        with self._room:
            while (len(self._waiting) >= MAX_WAITING_LINES or self._waiting_bytes + size > MAX_WAITING_BYTES) \
                    and self._waiting and not self._closed and threading.current_thread() is not threading.main_thread():
                self._room.wait(0.5)
            self._waiting.append((fragments, size))
            self._waiting_bytes += size
        self._call_in_loop(self._print_waiting)

    def _call_in_loop(self, callback: Callable[[], None]) -> None:
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed: close() already printed what waited
            pass

    def _print_waiting(self) -> None:
        """In the loop: print the waiting lines above the prompt (or plainly before it starts)."""
        if not self._waiting:  # an earlier wake-up printed them
            return
        app = self._session.app
        if not app.is_running:
            self._write_waiting()
            return
        app.renderer.erase()  # the cursor goes back to where the prompt starts
        self._write_waiting()
        if not app.is_done:
            app.renderer.request_absolute_cursor_position()  # how much room is below, as after any erase
        app.invalidate()  # the prompt is drawn again, below the new lines

    def _write_waiting(self) -> None:
        from prompt_toolkit.renderer import print_formatted_text as write_fragments

        output = self._session.app.output
        while self._waiting:
            with self._room:
                fragments, size = self._waiting.popleft()
                self._waiting_bytes -= size
                self._room.notify_all()
            write_fragments(output, [*fragments, ("", "\n")], self._style)
            self._shown.append([(style, text[:SHOWN_KEPT_CHARS]) for style, text in fragments])
        output.flush()

    def _redraw_if_resized(self, app) -> None:
        """Before each drawing of the prompt: after a resize, clear the screen and show the latest lines again.

        A terminal that reflows its text on a resize (tmux, most modern ones)
        rewraps the input line being typed too, so prompt_toolkit's erase of
        its old rows misses some and stale pieces would stay above the prompt.
        Redrawing from a clear screen is right whether the terminal reflows or not.
        """
        from prompt_toolkit.renderer import print_formatted_text as write_fragments
        from prompt_toolkit.utils import get_cwidth

        size = app.output.get_size()
        resized, self._size = self._size is not None and size != self._size, size
        if not resized:
            return
        columns = max(1, size.columns)
        typed = f"{self._session.message}{self._session.default_buffer.text}"
        rows_of = lambda width: -(-max(1, width) // columns)  # a line of that width, wrapped
        room = max(0, size.rows - rows_of(get_cwidth(typed)))  # rows above the input line
        latest: list[list[tuple[str, str]]] = []
        for fragments in reversed(self._shown):
            rows = rows_of(sum(get_cwidth(text) for _, text in fragments))
            if rows > room:
                break
            room -= rows
            latest.append(fragments)
        app.output.erase_screen()
        app.output.cursor_goto(0, 0)
        for fragments in reversed(latest):
            write_fragments(app.output, [*fragments, ("", "\n")], self._style)
        app.output.flush()

    def _accept(self, buffer) -> bool:
        """Enter: keep a copy of the line above the prompt and hand it to read_line()."""
        self._post([("", f"{self._session.message}{buffer.text}")])  # the main thread never waits in _post
        self._print_waiting()
        self._typed.append(buffer.text)
        self._line_entered.set()
        return False  # the prompt starts empty again

    def interrupt(self) -> None:
        """Any thread: end the prompt (read_line returns None), now or as soon as it starts."""
        self._interrupted.set()
        self._call_in_loop(self._exit_prompt)

    def _exit_prompt(self, exception: BaseException | None = None) -> None:
        app = self._session.app
        if app.is_running and app.future is not None and not app.future.done():
            app.exit(exception=exception or EOFError())

    def _exit_if_interrupted(self) -> None:
        if self._interrupted.is_set():
            self._exit_prompt()

    def read_line(self, prompt: str = "> ") -> str | None:
        """The next line entered; None after Ctrl+D or :meth:`interrupt`.  Ctrl+C raises KeyboardInterrupt."""
        if self._interrupted.is_set():
            return None
        self._session.message = prompt
        if self._prompt is None:
            self._prompt = self._loop.create_task(self._session.prompt_async(prompt, pre_run=self._exit_if_interrupted))
        else:
            self._session.app.invalidate()  # the prompt text may have changed
        try:
            return self._loop.run_until_complete(self._next_line())
        except EOFError:
            return None

    async def _next_line(self) -> str:
        while not self._typed:
            entered = asyncio.ensure_future(self._line_entered.wait())
            await asyncio.wait({entered, self._prompt}, return_when=asyncio.FIRST_COMPLETED)
            entered.cancel()
            self._line_entered.clear()
            if not self._typed and self._prompt.done():
                self._prompt.result()  # EOFError (Ctrl+D, interrupt) or KeyboardInterrupt (Ctrl+C)
                raise EOFError
        return self._typed.popleft()

    def let_through(self) -> None:
        """Any thread: the client is leaving; a receive thread waiting for room goes on (lines just queue)."""
        with self._room:
            self._closed = True
            self._room.notify_all()

    def close(self) -> None:
        """End the prompt (it erases itself), print what is still waiting, restore the terminal."""
        self.let_through()
        self._loop.run_until_complete(self._wind_down())
        self._write_waiting()
        self._loop.close()
        self._patch.__exit__(None, None, None)

    async def _wind_down(self) -> None:
        self._exit_prompt()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            if task is not self._prompt:
                task.cancel()
        await asyncio.wait(others) if others else None
        if self._prompt is not None and not self._prompt.cancelled():
            self._prompt.exception()  # seen: EOFError or KeyboardInterrupt, the way the prompt ended


class HeldEvents:
    """What arrives before the name is accepted is held, then shown from the welcome on, in order.

    A server may send the welcome and the first chat lines in one write, so
    they are read, and filed, before registration is over; none of them is lost.
    """

    def __init__(self, console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self._welcome: protocol.Reply | None = None
        # What came after the welcome (before it: nothing to show), bounded as the client's own memory.
        self._after_welcome: collections.deque = collections.deque(maxlen=CONSOLE_KEEP_EVENTS)
        self._holding = True

    def offer(self, event) -> None:
        with self._lock:
            if self._holding:
                if isinstance(event, protocol.Reply) and event.topic == "welcome":
                    self._welcome = event
                    self._after_welcome.clear()
                else:
                    self._after_welcome.append(event)
                return
        self._console.show(event)

    def forget(self) -> None:
        """A name was refused: what came before belongs to that attempt."""
        with self._lock:
            self._welcome = None
            self._after_welcome.clear()

    def welcome(self) -> protocol.Reply | None:
        return self._welcome

    def release(self) -> None:
        """Show what came after the welcome, then show every event as it comes."""
        with self._lock:
            for event in self._after_welcome if self._welcome is not None else ():
                self._console.show(event)
            self._after_welcome.clear()
            self._holding = False


def run(host: str, port: int, name: str | None, client_class: type = ChatClient, timeout_s: float = 10.0,
        clock: bool | None = None) -> int:
    """Chat until the user quits or the server goes away; returns the exit code.

    ``client_class`` is :class:`~chat.tcp.client.ChatClient` (TCP) or
    :class:`~chat.udp.UDPChatClient`: the console is the same.  ``clock``:
    the local time in front of each line shown (default: on a terminal, yes;
    piped, no, so scripts read the lines as the server sent them).
    """
    on_terminal = sys.stdin.isatty() and sys.stdout.isatty()
    names = NamesOnline()
    console = TerminalConsole(clock is not False, names) if on_terminal else PipeConsole(bool(clock))
    gone = threading.Event()
    held = HeldEvents(console)

    def on_event(event) -> None:
        names.learn(event)
        if isinstance(event, protocol.ServerClosing):
            server_closing.set()
        if isinstance(event, Disconnected):
            if not client_is_closing.is_set():
                gone.set()
                console.interrupt()
        else:  # held until the name is accepted (run() shows the answers to the name itself)
            held.offer(event)

    client_is_closing, server_closing = threading.Event(), threading.Event()
    client = client_class(timeout_s=timeout_s, on_event=on_event, keep_events=CONSOLE_KEEP_EVENTS,
                          keep_bytes=CONSOLE_KEEP_BYTES)
    try:
        return _connect_and_chat(client, console, (host, port), name, gone, client_is_closing, server_closing, held)
    except KeyboardInterrupt:  # Ctrl+C outside the chat loop: asked for a name, or just welcomed
        client_is_closing.set()
        console.let_through()
        if client.name is not None:
            client.quit()  # the others see a quit, not a lost connection
        else:
            client.close()
        return EXIT_OK
    finally:
        console.close()


def _connect_and_chat(client: ChatClient, console, address: tuple, name: str | None, gone: threading.Event,
                      client_is_closing: threading.Event, server_closing: threading.Event,
                      held: HeldEvents | None = None) -> int:
    """Connect, register, chat; the exit code."""
    try:
        client.open(address)
    except OSError as exc:
        console.note(f"can't reach the chat server at {_where(address)}: {_why_unreachable(exc)}")
        return EXIT_UNREACHABLE
    held = held or HeldEvents(console)
    refused_exit = _register(client, console, name, gone, held, address)
    if refused_exit is not None:
        client_is_closing.set()
        client.close()
        return refused_exit
    if getattr(console, "completes_names", False):
        try:
            client.send(protocol.format_command(protocol.Who()))  # who is here, on screen and for Tab
        except OSError:
            pass  # the chat loop sees the connection gone
    return _chat(client, console, gone, client_is_closing, server_closing)


def _where(address: tuple) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _why_unreachable(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
        return "nothing listens on that port"
    return getattr(exc, "strerror", None) or str(exc)


def _register(client: ChatClient, console, name: str | None, gone: threading.Event, held: HeldEvents,
              address: tuple = ("?", 0)) -> int | None:
    """Ask for a name until the server takes one: None once registered, else the exit code.

    The end of input (Ctrl+D) at the name prompt is the user's choice to leave:
    EXIT_OK.  No chat server there (it closes before a welcome, never answers,
    or can't be reached): EXIT_UNREACHABLE, with one sentence saying which.
    """
    while True:
        if name is None:
            name = console.read_line("your name: ")
            if name is None and gone.is_set():
                console.note(f"the server at {_where(address)} closed the connection before welcoming you")
                return EXIT_UNREACHABLE
            if name is None:
                return EXIT_OK
        try:
            registered = client.register(name)
        except NameRefused as exc:
            console.note(f"! {exc.code}: {exc.text}")
            held.forget()
            if not console.asks_again:  # piped input: its next line is a message, never a name
                return EXIT_NAME_REFUSED
            name = None
            continue
        except TimeoutError:
            console.note(f"no answer from {_where(address)} within {client.timeout_s:g} s: is a chat server running there?")
            return EXIT_UNREACHABLE
        except (OSError, ConnectionError) as exc:
            if "can't be reached" in str(exc):  # UDP: the system reported that nothing listens there
                console.note(f"can't reach the chat server at {_where(address)}: nothing listens on that port")
            else:
                console.note(f"the server at {_where(address)} closed the connection before welcoming you: "
                             "is it a chat server?")
            return EXIT_UNREACHABLE
        welcome = held.welcome()  # the server's own words: the name as it took it, and how many are online
        said = welcome.text if welcome is not None else f"{registered}; /help lists the commands"
        console.note(f"= welcome: you are {said}; /quit leaves")
        held.release()
        return None


def _chat(client: ChatClient, console, gone: threading.Event, closing: threading.Event,
          server_closing: threading.Event | None = None) -> int:
    reason = None
    try:
        while not gone.is_set() and reason is None:
            typed = console.read_line()
            if typed is None:  # end of input (Ctrl+D) or the server went away
                break
            reason = _send_typed(client, typed)
    except KeyboardInterrupt:
        pass
    except OSError:
        gone.set()
    console.let_through()  # from here on the prompt is gone: nothing would make room for waiting lines
    if gone.is_set():
        client.close()
        if server_closing is not None and server_closing.is_set():  # it said so first: a clean stop
            console.note("the chat server shut down")
            return EXIT_OK
        console.note("the connection to the chat server was lost")
        return EXIT_SERVER_GONE
    closing.set()
    client.quit(reason or "")
    return EXIT_OK


def _send_typed(client: ChatClient, typed: str) -> str | None:
    """Send what was typed, or pasted: each of its lines in turn (a trailing line break sends nothing).

    Returns the reason of a ``/quit`` among them (the lines after it are not
    sent), or None.
    """
    for line in typed.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        command = protocol.parse_command(line)
        if isinstance(command, protocol.Quit):
            return command.reason
        if not isinstance(command, protocol.Empty):
            client.send(line)
    return None
