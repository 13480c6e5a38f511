"""Time from process start on a fresh data directory to the first 200 on /readyz (median of N)."""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

binary, args, runs = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
            c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return c.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False

times, rss = [], []
for _ in range(runs):
    data = tempfile.mkdtemp(prefix="statelab-bench-")
    port = free_port()
    env = dict(os.environ, DATA_DIR=data, LOG_FORMAT="json", RUST_LOG="warn")
    start = time.perf_counter()
    proc = subprocess.Popen([binary, *args, "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ready(port):
        time.sleep(0.0005)
    times.append((time.perf_counter() - start) * 1000)
    time.sleep(0.5)
    with open(f"/proc/{proc.pid}/status") as f:
        rss.append(next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024)
    proc.send_signal(signal.SIGINT); proc.wait()
    shutil.rmtree(data)
print(json.dumps({"start_to_ready_ms": statistics.median(times), "idle_rss_mib": statistics.median(rss)}))
