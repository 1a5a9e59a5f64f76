"""Step 2: many clients: a thread per client, a list of users, a broadcast.  The textbook design.

Each client's thread reads its name, then relays whatever each ``recv`` returns
to everybody else as ``[NAME] TEXT``.  It works in a demo; ``chat check``
shows where it breaks: one ``recv`` is not one message (two messages merge,
a long one is cut), half a Cyrillic letter raises, a client that stops
reading blocks the sender's thread in ``send``, and Nagle's algorithm holds
small writes back.
"""

import socket
import sys
import threading


class ChatServer:
    def __init__(self, host="127.0.0.1", port=8000):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen()
        self.address = self.listener.getsockname()
        self.clients = []  # (socket, name) of everybody online, changed by every client's thread
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
            thread.start()  # the accept loop goes straight back to accept(): nobody waits for this client

    def handle(self, sock):
        name = "?"
        try:
            name = sock.recv(1024).decode("utf-8").strip()
            self.clients.append((sock, name))
            self.broadcast(f"*** {name} joined\n", sock)
            while data := sock.recv(1024):
                self.broadcast(f"[{name}] {data.decode('utf-8')}", sock)
        except (OSError, UnicodeDecodeError):
            pass
        finally:
            if (sock, name) in self.clients:
                self.clients.remove((sock, name))
                self.broadcast(f"*** {name} left\n", sock)
            sock.close()
            self.connections.discard(sock)

    def broadcast(self, text, sender):
        for sock, _ in self.clients:
            if sock is not sender:
                try:
                    sock.sendall(text.encode("utf-8"))
                except OSError:
                    pass  # that client's own thread will notice and clean up

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
    print(f"step 2 listening on {server.address[0]}:{server.address[1]}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
