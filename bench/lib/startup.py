"""Time from process start on a fresh data directory to the first 200 on /readyz (median of N).

usage: startup.py BINARY "SUBCOMMAND [ARG...]" N
The server listens on 127.0.0.1:0; its port is read from its JSON "listening" log line.
"""
import json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

binary, args, runs = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
LISTENING = re.compile(r'"message":"listening".*"local":"[^"]*:(\d+)"')


def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
            c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return c.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def port_from(log, proc):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        with open(log) as f:
            for line in f:
                m = LISTENING.search(line)
                if m:
                    return int(m.group(1))
        time.sleep(0.0005)
    sys.exit(f"startup.py: the server did not log its port; log:\n{open(log).read()}")


times, rss = [], []
for _ in range(runs):
    data = tempfile.mkdtemp(prefix="statelab-bench-")
    log = os.path.join(data, "server.log")
    env = dict(os.environ, DATA_DIR=os.path.join(data, "data"), LOG_FORMAT="json",
               RUST_LOG="warn,statelab::server=info")
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen([binary, *args, "--listen", "127.0.0.1:0"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        port = port_from(log, proc)
        while not ready(port):
            time.sleep(0.0005)
        times.append((time.perf_counter() - start) * 1000)
        time.sleep(0.5)
        with open(f"/proc/{proc.pid}/status") as f:
            rss.append(next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait()
        shutil.rmtree(data)
print(json.dumps({"start_to_ready_ms": statistics.median(times), "idle_rss_mib": statistics.median(rss)}))
