"""A relay that breaks the rules on purpose, to check that the load generator counts right."""

from __future__ import annotations

import socket
import threading
import time

from chat import protocol
from chat.lab.config import parse_message_text

DROP, DUPLICATE, HOLD = 3, 5, 7  # by seq % 10: dropped, sent twice, sent after the next one


class FaultyRelay:
    """Relays load messages in our grammar, with faults decided by each message's sequence number.

    Per sender, out of every ten messages: seq % 10 == 3 is dropped, == 5 is
    delivered twice, == 7 is held back and delivered after == 8 (out of order).
    ``pause_at_seq``: before relaying that message, stall for ``pause_s``.
    """

    def __init__(self, message_bytes: int, alphabet: str, pause_at_seq: int | None = None, pause_s: float = 0.0) -> None:
        self.message_bytes, self.alphabet = message_bytes, alphabet
        self.pause_at_seq, self.pause_s = pause_at_seq, pause_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.server_address = self._listener.getsockname()
        self._lock = threading.Lock()
        self._clients: list[tuple[str, socket.socket]] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._paused = False

    def __enter__(self) -> FaultyRelay:
        thread = threading.Thread(target=self._accept, name="faulty-accept")
        self._threads.append(thread)
        thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(5)
            thread = threading.Thread(target=self._serve, args=(sock,), name="faulty-client")
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        decoder = protocol.LineDecoder()
        name = None
        held = None
        try:
            while not self._stopping.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                for line in decoder.feed(data):
                    if name is None:
                        name = line
                        with self._lock:
                            self._clients.append((name, sock))
                        sock.sendall(protocol.encode_line(f"= welcome: {name}"))
                        continue
                    held = self._relay(name, line, held)
        except OSError:
            return

    def _relay(self, name: str, text: str, held: str | None) -> str | None:
        seq = parse_message_text(text, self.message_bytes, self.alphabet)[0]
        if seq == self.pause_at_seq and not self._paused:
            self._paused = True
            time.sleep(self.pause_s)  # the stall this relay exists to show
        kind = seq % 10
        if kind == DROP:
            return held
        if kind == HOLD:
            return text
        self._broadcast(name, text, 2 if kind == DUPLICATE else 1)
        if held is not None:
            self._broadcast(name, held, 1)
        return None

    def _broadcast(self, name: str, text: str, times: int) -> None:
        line = protocol.encode_event(protocol.ChatMessage(name, text)) * times
        with self._lock:
            for other, sock in self._clients:
                if other != name:
                    sock.sendall(line)

    def __exit__(self, *exc_info) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()
        for _, sock in self._clients:
            sock.close()
