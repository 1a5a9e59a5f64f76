"""Step 4: a lock around the list of users.

Every client's thread changes ``self.clients``: one appends while another
removes while a third loops over it to broadcast.  A loop over a list that
loses an element before the loop's position skips the next element: a user
misses a message, now and then, under churn.  So the list changes only under
``self.lock``, and a broadcast loops over a copy taken under it; the sends
happen outside the lock, which is never held while waiting for the network.
"""

import socket
import sys
import threading

MAX_LINE_BYTES = 4096


def lines_from(sock):
    """Every complete line the client sends, decoded (invalid UTF-8 becomes U+FFFD), until it closes."""
    buffer = b""
    discarding = False  # inside a line that was too long
    while data := sock.recv(4096):
        buffer += data
        *complete, buffer = buffer.split(b"\n")  # the last piece has no newline yet: it waits
        for line in complete:
            if not discarding:
                yield line.decode("utf-8", errors="replace").rstrip("\r")
            discarding = False
        if len(buffer) > MAX_LINE_BYTES:
            if not discarding:
                sock.sendall(f"! line-too-long: at most {MAX_LINE_BYTES} bytes\n".encode())
            buffer, discarding = b"", True


class ChatServer:
    def __init__(self, host="127.0.0.1", port=8000):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen()
        self.address = self.listener.getsockname()
        self.clients = []  # (socket, name) of everybody online: changed only under self.lock
        self.lock = threading.Lock()
        self.threads = []
        self.connections = set()  # every socket connected, named or not (stop() wakes them all)

    def serve_forever(self):
        while True:
            try:
                sock, address = self.listener.accept()
            except OSError:
                return
            self.connections.add(sock)
            self.threads = [thread for thread in self.threads if thread.is_alive()]
            thread = threading.Thread(target=self.handle, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def handle(self, sock):
        name = None
        try:
            lines = lines_from(sock)
            name = next(lines, None)  # the first line is the name
            if not name:
                return
            with self.lock:
                self.clients.append((sock, name))
            self.broadcast(f"*** {name} joined\n", sock)
            for line in lines:
                self.broadcast(f"[{name}] {line}\n", sock)
        except OSError:
            pass
        finally:
            with self.lock:
                was_online = (sock, name) in self.clients
                if was_online:
                    self.clients.remove((sock, name))
            if was_online:
                self.broadcast(f"*** {name} left\n", sock)
            sock.close()
            self.connections.discard(sock)

    def broadcast(self, text, sender):
        with self.lock:
            online = list(self.clients)  # a copy: the sends below happen without the lock
        for sock, _ in online:
            if sock is not sender:
                try:
                    sock.sendall(text.encode("utf-8"))
                except OSError:
                    pass

    def stop(self):
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in list(self.connections):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self.threads:
            thread.join(5)


def main():
    server = ChatServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
    print(f"step 4 listening on {server.address[0]}:{server.address[1]}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
