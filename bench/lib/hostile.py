"""Hostile clients for bench/hostile.sh (loopback only).

usage:
  hostile.py methods PORT N LENGTH   N requests, each with a made-up method of LENGTH random
                                     letters, over 8 kept-alive connections; prints the statuses
  hostile.py hold PORT N MODE SECONDS
                                     opens N connections and holds them for SECONDS: MODE
                                     "slow" sends half a request's headers, then one more header
                                     line every 5 s (slowloris); "silent" sends nothing. Prints
                                     "opened K" once they are open, then "closed-by-server C"
                                     at the end (connections the server closed meanwhile)
"""
import random, select, socket, string, sys, threading, time


def read_response(sock, buffer):
    """One Content-Length-framed response; returns (status, rest of buffer) or (None, b"")."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return status, rest[length:]


def methods(port, n, length):
    statuses = {}
    lock = threading.Lock()

    def worker(count):
        sock = socket.create_connection(("127.0.0.1", port))
        buffer = b""
        for _ in range(count):
            method = "".join(random.choices(string.ascii_uppercase, k=length))
            try:
                sock.sendall(f"{method} /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                status, buffer = read_response(sock, buffer)
            except OSError:
                status = None
            if status is None:
                sock.close()
                sock = socket.create_connection(("127.0.0.1", port))
                buffer = b""
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
        sock.close()

    threads = [threading.Thread(target=worker, args=(n // 8 + (i < n % 8),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(" ".join(f"{k}:{v}" for k, v in sorted(statuses.items(), key=str)))


def open_many(port, n, within):
    """Opens N connections in batches of 50, each batch given up to WITHIN seconds: a server
    that no longer accepts leaves connects hanging once its backlog is full (one at a time would
    take minutes), and batches let a server that does accept take each one in before the next,
    as a steady attacker's connections arrive. Returns the sockets that connected."""
    connected = []
    for start in range(0, n, 50):
        pending = {}
        for _ in range(min(50, n - start)):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            pending[s.fileno()] = s
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        deadline = time.monotonic() + within
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):
                s = pending.pop(fd)
                poller.unregister(fd)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    s.setblocking(True)
                    connected.append(s)
                else:
                    s.close()
        for s in pending.values():
            s.close()
        time.sleep(0.02)
    return connected


def hold(port, n, mode, seconds):
    socks = open_many(port, n, 2)
    for i, s in enumerate(socks):
        if mode == "slow":
            try:
                s.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ".encode())
            except OSError:
                pass
    print(f"opened {len(socks)}", flush=True)
    closed = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(5, max(0, deadline - time.monotonic())))
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                if mode == "slow":
                    s.sendall(b"a\r\nX-More: ")
                s.setblocking(False)
                if s.recv(1) == b"":
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
            finally:
                s.setblocking(True)
    print(f"closed-by-server {len(closed)}", flush=True)


if __name__ == "__main__":
    what, port = sys.argv[1], int(sys.argv[2])
    if what == "methods":
        methods(port, int(sys.argv[3]), int(sys.argv[4]))
    elif what == "hold":
        hold(port, int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit(__doc__)
