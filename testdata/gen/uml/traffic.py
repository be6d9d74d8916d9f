"""Fixed-size TCP traffic for the netem captures (testdata/gen/make-tcp-netem.sh).

Runs inside the user-mode-linux guest, in one of its network namespaces:

    traffic.py server MODE ADDR READYFILE   # listen, touch READYFILE, serve
    traffic.py client MODE ADDR             # connect and send

MODE bulk: one connection, the client sends BULK_SEGS x 1400 bytes.
MODE echo: ECHO_CONNS connections, each ECHO_ROUNDS requests of ECHO_SIZE
bytes that the server echoes, so both directions carry data.
The sizes are fixed so every run makes the same conversation; only netem's
randomness differs.
"""
import socket
import sys

PORT = 5001
BULK_SEGS = 200
ECHO_CONNS, ECHO_ROUNDS, ECHO_SIZE = 2, 20, 3000


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve(c, mode):
    while True:
        try:
            d = c.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        if mode == "echo":
            c.sendall(d)
    c.close()


def server(mode, addr, ready):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, PORT))
    s.listen(4)
    open(ready, "w").close()
    for _ in range(ECHO_CONNS if mode == "echo" else 1):
        c, _ = s.accept()
        serve(c, mode)


def client(mode, addr):
    for _ in range(ECHO_CONNS if mode == "echo" else 1):
        c = socket.socket(family(addr), socket.SOCK_STREAM)
        c.connect((addr, PORT))
        if mode == "bulk":
            buf = b"x" * 1400
            for _ in range(BULK_SEGS):
                c.sendall(buf)
        else:
            for _ in range(ECHO_ROUNDS):
                c.sendall(b"q" * ECHO_SIZE)
                got = 0
                while got < ECHO_SIZE:
                    d = c.recv(65536)
                    if not d:
                        raise SystemExit("echo: server closed early")
                    got += len(d)
        c.close()


if __name__ == "__main__":
    role, mode, addr = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode not in ("bulk", "echo"):
        raise SystemExit("unknown mode " + mode)
    if role == "server":
        server(mode, addr, sys.argv[4])
    else:
        client(mode, addr)
