"""Step 6: a bounded queue and a writer thread per client; a client too far behind is dropped.

Until now a broadcast sent to every client from the *sender's* thread, and a
client that stops reading fills its socket buffers until ``sendall`` blocks:
the sender's thread stops, and soon everybody waits for that one client.
Now each client has a queue of lines and a thread that writes them; a
broadcast only puts a line in each queue, which never waits.  A queue that
fills up belongs to a client that is not reading: it is dropped, and the
others never notice.  On Ctrl+C everybody is told before the server closes.
"""

import queue
import socket
import sys
import threading

MAX_LINE_BYTES = 4096
QUEUE_LINES = 1000  # lines waiting for one client before it counts as not reading


def lines_from(sock):
    """Every complete line the client sends, decoded (invalid UTF-8 becomes U+FFFD), until it closes."""
    buffer = b""
    discarding = False
    while data := sock.recv(4096):
        buffer += data
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            if not discarding:
                yield line.decode("utf-8", errors="replace").rstrip("\r")
            discarding = False
        if len(buffer) > MAX_LINE_BYTES:
            buffer, discarding = b"", True


class Client:
    """One connection: its socket, its name, its queue of lines to send, and the thread that sends them."""

    def __init__(self, sock):
        self.sock, self.name = sock, None
        self.outbox = queue.Queue(QUEUE_LINES)
        self.writer = threading.Thread(target=self.write_all, daemon=True)

    def send(self, text):
        """Queue a line; False if the queue is full (the client is not reading)."""
        try:
            self.outbox.put_nowait(text.encode("utf-8"))
            return True
        except queue.Full:
            return False

    def write_all(self):
        while (data := self.outbox.get()) is not None:  # None: nothing more to send
            try:
                self.sock.sendall(data)
            except OSError:
                return
        try:
            self.sock.shutdown(socket.SHUT_WR)  # all said: the client reads the end
        except OSError:
            pass

    def close(self, drop=False):
        """Wake the reader; the writer sends what is queued first, unless the client is dropped."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR if drop else socket.SHUT_RD)
        except OSError:
            pass
        try:
            self.outbox.put_nowait(None)
        except queue.Full:
            pass  # dropped: the shutdown above has already stopped the writer's sendall


class ChatServer:
    def __init__(self, host="127.0.0.1", port=8000):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen()
        self.address = self.listener.getsockname()
        self.clients = []  # the Clients online: changed only under self.lock
        self.lock = threading.Lock()
        self.connections = set()  # every Client connected, named or not (stop() tells them all)
        self.threads = []

    def serve_forever(self):
        while True:
            try:
                sock, address = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = Client(sock)
            self.connections.add(client)
            self.threads = [thread for thread in self.threads if thread.is_alive()]
            thread = threading.Thread(target=self.handle, args=(client,), daemon=True)
            self.threads += [thread, client.writer]
            client.writer.start()
            thread.start()

    def handle(self, client):
        try:
            lines = lines_from(client.sock)
            client.name = next(lines, None)
            if not client.name:
                return
            with self.lock:
                self.clients.append(client)
            self.broadcast(f"*** {client.name} joined\n", client)
            for line in lines:
                self.broadcast(f"[{client.name}] {line}\n", client)
        except OSError:
            pass
        finally:
            self.leave(client, "connection lost")
            client.writer.join(5)
            client.sock.close()
            self.connections.discard(client)

    def broadcast(self, text, sender=None):
        with self.lock:
            online = list(self.clients)
        for client in online:
            if client is not sender and not client.send(text):
                self.leave(client, "too slow", drop=True)  # its queue is full: it stopped reading

    def leave(self, client, reason, drop=False):
        with self.lock:
            was_online = client in self.clients
            if was_online:
                self.clients.remove(client)
        client.close(drop)
        if was_online:
            self.broadcast(f"*** {client.name} left ({reason})\n", client)

    def stop(self, notice="*** server shutting down\n"):
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        connections = list(self.connections)
        for client in connections:
            client.send(notice)
            client.close()  # each writer sends the notice, then the end
        for client in connections:
            client.writer.join(1)
            client.close(drop=True)  # those that did not take it in a second
        for thread in self.threads:
            thread.join(5)


def main():
    server = ChatServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
    print(f"step 6 listening on {server.address[0]}:{server.address[1]}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
