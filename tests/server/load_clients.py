"""A bounded load test of llmrt serve: C concurrent streaming clients for
about S seconds; every fourth client hangs up mid-stream. Asserts no 5xx,
every completed stream well formed (JSON chunks, one finish_reason, usage,
data: [DONE]), and, once the clients are gone, the KV cache back to zero
used blocks with nothing running (from /metrics).

usage: load_clients.py BASE_URL [--clients 64] [--seconds 30]"""
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse


def metric(host, port, name):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith("llmrt:%s{" % name):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.completed = self.hung_up = self.rejected = 0
        self.errors = []

    def add(self, field):
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)

    def error(self, message):
        with self.lock:
            self.errors.append(message)


def check_stream(raw):
    if not raw.endswith("\n\n"):
        return "does not end with a blank line"
    events = raw[:-2].split("\n\n")
    if events[-1] != "data: [DONE]":
        return "no [DONE]"
    finishes = 0
    usage = None
    for e in events[:-1]:
        if not e.startswith("data: "):
            return "malformed event %r" % e[:100]
        chunk = json.loads(e[6:])
        if "error" in chunk:
            return "error event %r" % chunk
        for c in chunk["choices"]:
            if c["finish_reason"] is not None:
                finishes += 1
        if chunk.get("usage"):
            usage = chunk["usage"]
    if finishes != 1 or not usage:
        return "finish reasons %d, usage %r" % (finishes, usage)
    return None


def client(index, host, port, deadline, stats):
    rng = random.Random(index)
    hang_up = index % 4 == 0
    while time.monotonic() < deadline:
        body = json.dumps({"prompt": "Once upon a time " * rng.randint(1, 20), "max_tokens": rng.randint(8, 96),
                           "temperature": 0.8, "seed": rng.randint(0, 1 << 30), "ignore_eos": rng.random() < 0.5,
                           "stream": True, "stream_options": {"include_usage": True}})
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status >= 500:
                stats.error("status %d: %s" % (resp.status, resp.read()[:200]))
                continue
            if resp.status == 429:
                stats.add("rejected")
                resp.read()
                time.sleep(float(resp.getheader("Retry-After", "1")))
                continue
            if resp.status != 200:
                stats.error("status %d: %s" % (resp.status, resp.read()[:200]))
                continue
            if hang_up:
                resp.read1(rng.randint(1, 400))  # a little of the stream, then gone
                conn.sock.close()
                stats.add("hung_up")
                continue
            problem = check_stream(resp.read().decode("utf-8"))
            if problem:
                stats.error(problem)
            else:
                stats.add("completed")
        except Exception as e:  # noqa: BLE001 — any failure is a test failure
            stats.error("%s: %s" % (type(e).__name__, e))
        finally:
            conn.close()


def main():
    args = sys.argv[1:]
    url = urllib.parse.urlparse(args[0])
    clients = int(args[args.index("--clients") + 1]) if "--clients" in args else 64
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 30
    stats = Stats()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=(i, url.hostname, url.port, deadline, stats))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    used = running = None
    for _ in range(100):
        used = metric(url.hostname, url.port, "kv_cache_used_blocks")
        running = metric(url.hostname, url.port, "num_requests_running")
        if used == 0 and running == 0:
            break
        time.sleep(0.1)
    print("%d streams completed, %d clients hung up, %d told 429, %d errors; KV blocks used after: %s, running: %s"
          % (stats.completed, stats.hung_up, stats.rejected, len(stats.errors), used, running))
    for e in stats.errors[:10]:
        print("FAIL:", e)
    ok = not stats.errors and used == 0 and running == 0 and stats.completed > 0 and stats.hung_up > 0
    sys.exit(0 if ok else 1)


main()
