"""Step 1: one client, an echo.  The five calls every TCP server makes: socket, bind, listen, accept, recv/sendall.

Run it: ``python -m chat.lab.steps.step1_echo 8000``, then ``nc 127.0.0.1 8000``
and type: every line comes back.  A second ``nc`` waits until the first one
leaves: this server talks to one client at a time.
"""

import socket
import sys


class ChatServer:
    def __init__(self, host="127.0.0.1", port=8000):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # TCP over IPv4
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once on the same port
        self.listener.bind((host, port))  # port 0: the system picks a free one
        self.listener.listen()
        self.address = self.listener.getsockname()
        self.client = None

    def serve_forever(self):
        while True:
            try:
                self.client, address = self.listener.accept()  # waits for the next client
            except OSError:  # the listener was closed: stop() was called
                return
            with self.client:
                try:
                    while data := self.client.recv(1024):  # b"" when the client has closed its side
                        self.client.sendall(data)  # send() may send only part of it; sendall() sends it all
                except OSError:
                    pass  # the client vanished (a reset): on to the next one

    def stop(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept() in the serving thread
        self.listener.close()
        if self.client is not None:
            try:
                self.client.shutdown(socket.SHUT_RDWR)  # wakes recv()
            except OSError:
                pass


def main():
    server = ChatServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
    print(f"step 1 listening on {server.address[0]}:{server.address[1]}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
