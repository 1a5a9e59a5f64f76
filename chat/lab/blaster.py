"""A server that only sends: it measures the load generator's own ceiling.

Each connection registers as with the chat server (a name, then a welcome
line) and then receives the same pre-built block of chat lines, written as
fast as TCP allows.  The lines are valid load messages from ``senders`` fake
users, so the generator parses and counts them exactly as it would real
ones.  Nothing here does per-line work, so the rate at which the generator
takes these lines is the most it could ever measure.
"""

from __future__ import annotations

import socket
import threading

from chat import protocol
from chat.lab.config import message_text, now_ns


def build_block(senders: int, messages: int, message_bytes: int, alphabet: str, name_prefix: str = "fake") -> bytes:
    """Every fake sender's messages, interleaved, stamped with the time of building."""
    stamp = now_ns()
    return b"".join(
        protocol.encode_event(protocol.ChatMessage(f"{name_prefix}{sender}", message_text(seq, stamp, message_bytes, alphabet)))
        for seq in range(messages)
        for sender in range(senders)
    )


class Blaster:
    """Life cycle as ChatServer: ``Blaster(block, users).start()``, ``server_address``, ``stop()``.

    Sending starts for everybody at once, ``start_delay_s`` after the
    ``users``-th connection was welcomed, so nothing piles up in kernel
    buffers before the generator's clock starts.
    """

    def __init__(self, block: bytes, users: int, start_delay_s: float = 0.5,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.block = block
        self.users = users
        self.start_delay_s = start_delay_s
        self._welcomed = 0
        self._lock = threading.Lock()
        self._go = threading.Event()
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.server_address = self._listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accept_thread = threading.Thread(target=self._accept, name="blaster-accept", daemon=True)

    def start(self) -> Blaster:
        self._accept_thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._sockets.append(sock)
            thread = threading.Thread(target=self._blast, args=(sock,), name="blaster-send", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _blast(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        try:
            name = sock.recv(4096).decode("utf-8", "replace").strip()
            sock.sendall(protocol.encode_event(protocol.Reply("welcome", f"{name}, blaster")))
            with self._lock:
                self._welcomed += 1
                last = self._welcomed == self.users
            if last and not self._stopping.wait(self.start_delay_s):
                self._go.set()
            self._go.wait()
            if not self._stopping.is_set():
                sock.sendall(self.block)
        except OSError:
            pass

    def stop(self) -> None:
        self._stopping.set()
        self._go.set()
        self._accept_thread.join()
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> Blaster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
