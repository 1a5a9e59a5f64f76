"""The textbook chat server: what NOT to do, kept to measure against.

This is the design most student solutions (and many online tutorials) share,
reproduced faithfully so the notebooks and benchmarks can show where it
breaks.  Only three things were added: a class around it so that it can be
started and stopped like :class:`chat.tcp.server.ChatServer`, a welcome line
so that the same load generator can drive it, and ``python -m chat.lab.naive
--port N`` to run it on its own (``python -m chat check`` grades it that way).
Its bugs are deliberate:

1. ``recv(1024)`` is taken to be one message.  TCP is a byte stream: two
   messages sent quickly arrive in one ``recv`` and are relayed as one (the
   second without its sender's name), and a long one is cut in two.
2. Each chunk is decoded on its own.  A Cyrillic letter (two bytes in UTF-8)
   cut between two reads raises ``UnicodeDecodeError``; the bare ``except``
   then disconnects the sender.
3. The broadcast is a blocking ``send`` loop in the *sender's* thread.  One
   client that stops reading fills its socket buffer, ``send`` blocks, and the
   sender's thread stops; soon every sender is stuck behind that one client.
4. ``clients`` and ``names`` are shared lists changed by every thread without
   a lock: a join or leave during a broadcast can skip a client or raise.
5. ``TCP_NODELAY`` is not set: Nagle's algorithm holds small writes back until
   the previous one is acknowledged, and delayed ACKs make that tens of ms.
"""

from __future__ import annotations

import logging
import socket
import threading

log = logging.getLogger(__name__)

ACCEPT_POLL_S = 0.2  # the textbook blocks in accept() forever; we poll so stop() works


class NaiveServer:
    """The textbook design behind the same life cycle as ChatServer (start, stop, server_address)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, nodelay: bool = False) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen()
        self.server.settimeout(ACCEPT_POLL_S)
        self.server_address = self.server.getsockname()[:2]
        self.nodelay = nodelay  # False, as in the textbook; True only for the Nagle experiment
        self.clients: list[socket.socket] = []  # shared by every thread, no lock (bug 4)
        self.names: list[str] = []
        self.threads: list[threading.Thread] = []
        self.running = False
        self.accept_thread: threading.Thread | None = None

    # ---- the textbook part -------------------------------------------------------

    def broadcast(self, message: bytes, sender: socket.socket | None) -> None:
        for client in self.clients:  # bug 4: the list may change while we loop
            if client is not sender:
                client.send(message)  # bug 3: blocks while this client's buffer is full

    def handle(self, client: socket.socket) -> None:
        try:
            name = client.recv(1024).decode("utf-8").strip()
            self.clients.append(client)
            self.names.append(name)
            client.send(f"= welcome: {name}\n".encode("utf-8"))
            self.broadcast(f"*** {name} joined\n".encode("utf-8"), client)
        except Exception:
            client.close()
            return
        while True:
            try:
                data = client.recv(1024)  # bug 1: one recv is not one message
                if not data:
                    raise ConnectionError("client left")
                text = data.decode("utf-8")  # bug 2: half a letter raises here
                self.broadcast(f"<{name}> {text}".encode("utf-8"), client)
            except Exception:  # the textbook catches everything and drops the client
                if client in self.clients:
                    index = self.clients.index(client)
                    self.clients.remove(client)
                    self.names.pop(index)
                client.close()
                try:
                    self.broadcast(f"*** {name} left (connection lost)\n".encode("utf-8"), client)
                except Exception:
                    pass
                return

    def accept_loop(self) -> None:
        while self.running:
            try:
                client, address = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self.nodelay:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self.handle, args=(client,), name="naive-client", daemon=True)
            self.threads.append(thread)
            thread.start()

    # ---- life cycle, added so tests and benchmarks can run it ----------------------------

    def start(self) -> NaiveServer:
        self.running = True
        self.accept_thread = threading.Thread(target=self.accept_loop, name="naive-accept", daemon=True)
        self.accept_thread.start()
        return self

    def serve_forever(self) -> None:
        self.running = True
        self.accept_loop()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.running = False
        if self.accept_thread is not None:
            self.accept_thread.join(timeout_s)
        self.server.close()
        for client in list(self.clients):
            try:
                client.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in send or recv
            except OSError:
                pass
        for thread in list(self.threads):
            thread.join(timeout_s)
        for client in list(self.clients):
            client.close()

    close = stop

    def __enter__(self) -> NaiveServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m chat.lab.naive [--host H] [--port N]``: serve until Ctrl+C, then stop."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m chat.lab.naive", description="The textbook chat server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    server = NaiveServer(args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
