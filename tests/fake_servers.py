"""Chat servers that misbehave on purpose, for the checker's tests: each is one way a submission can be broken.

Every one listens on 127.0.0.1 (port 0), serves each connection in a named
thread, and on ``stop()`` closes everything and joins every thread it started.
"""

from __future__ import annotations

import socket
import threading


class FakeServer:
    """Accepts connections and hands each to :meth:`serve` in a thread of its own."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.server_address = self.listener.getsockname()[:2]
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self.accepter = threading.Thread(target=self._accept, name=f"{type(self).__name__}-accept", daemon=True)

    def __enter__(self) -> FakeServer:
        self.accepter.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(0.2)
            self.sockets.append(sock)
            thread = threading.Thread(target=self._serve_safely, args=(sock,), name=f"{type(self).__name__}-conn",
                                      daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve_safely(self, sock: socket.socket) -> None:
        try:
            self.serve(sock)
        except OSError:
            pass

    def serve(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.accepter.join(5)
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self.threads:
            thread.join(5)
        for sock in self.sockets:
            sock.close()


class NeverAnswers(FakeServer):
    """Reads everything, says nothing, relays nothing."""

    def serve(self, sock: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                if not sock.recv(65536):
                    return
            except TimeoutError:
                continue


class ClosesAtOnce(FakeServer):
    """Closes every connection as soon as it is accepted."""

    def serve(self, sock: socket.socket) -> None:
        sock.close()


class AnswersGarbage(FakeServer):
    """Answers every read with bytes that are no chat line at all (invalid UTF-8, control characters)."""

    def serve(self, sock: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            sock.sendall(b"\xff\xfe\x00\x1b[2J" * 8 + b"\r\n")


class MegabyteLines(FakeServer):
    """Sends each user 1 MB lines with no newline, as fast as it will take them."""

    def serve(self, sock: socket.socket) -> None:
        line = b"A" * (1 << 20)
        while not self.stopping.is_set():
            try:
                sock.sendall(line)
            except TimeoutError:
                continue
