#!/usr/bin/env python3
"""HTTP API and security tests of `hplua serve` with a plain client (http.client).

usage: test_api.py HPLUA [fake|real]

fake: runs are the fake child (tests/station/fake_child.lua), driven by the serial.
real: runs are real hplua children on tests/station/suite (needs --events/--control).
Every call and error status of API section 8 is exercised, plus the security rules.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HPLUA = os.path.abspath(sys.argv[1])
MODE = sys.argv[2] if len(sys.argv) > 2 else "fake"
HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "suite")
FAILURES = []
HISTORY_DIR = tempfile.mkdtemp(prefix="hplua-station-test-")


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)
    else:
        print("ok:", what, flush=True)


class Station:
    def __init__(self, *args, env=None, expect_start=True):
        e = dict(os.environ)
        e.pop("HPLUA_TOKEN", None)
        e["HPLUA_HISTORY"] = os.path.join(HISTORY_DIR, "history.db")  # the runs' own history
        if MODE == "fake":
            e["HPLUA_SERVE_CHILD"] = os.path.join(HERE, "fake_child.lua")
        e.update(env or {})
        self.proc = subprocess.Popen([HPLUA, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=e, text=True)
        self.host, self.port = None, None
        if expect_start:
            line = self.proc.stdout.readline()
            m = re.search(r"http://\[?([^\]/]+?)\]?:(\d+)/", line)
            if not m:
                self.proc.kill()
                raise SystemExit("station did not start: %r %s" % (line, self.proc.stderr.read()))
            self.host, self.port = m.group(1), int(m.group(2))

    def request(self, method, path, body=None, headers=None, host=None, raw_body=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=10)
        h = dict(headers or {})
        data = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        c.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
        if host is not None:
            c.putheader("Host", host)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
            h["Content-Length"] = str(len(data))
        for k, v in h.items():
            c.putheader(k, v)
        c.endheaders()
        if data is not None:
            c.send(data.encode() if isinstance(data, str) else data)
        r = c.getresponse()
        text = r.read()
        c.close()
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        return r.status, doc, text, r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body if body is not None else {}, **kw)

    def state(self):
        return self.get("/api/state")[1]

    def wait_state(self, pred, timeout=20, what="state"):
        end = time.time() + timeout
        while time.time() < end:
            s = self.state()
            if pred(s):
                return s
            time.sleep(0.05)
        raise AssertionError("timed out waiting for " + what + ": " + json.dumps(self.state()))

    def wait_finished(self, run_id, timeout=20):
        return self.wait_state(lambda s: s["slots"][0]["run_id"] == run_id and s["slots"][0]["state"] == "finished",
                               timeout, "run " + run_id + " to finish")

    def children(self):
        """pids whose parent is the station (read from /proc)."""
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == self.proc.pid:
                        out.append(int(d))
                except OSError:
                    pass
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


def dechunk(raw):
    """The body of a (possibly cut-off) chunked HTTP response."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    if b"chunked" not in head.lower():
        return rest
    out = b""
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return out


def frames(raw):
    body = dechunk(raw)
    return [(i.decode(), json.loads(d)) for i, d in re.findall(rb"id: (\d+:\d+)\ndata: ([^\n]*)\n\n", body)]


def sse_read(st, headers=None, count=5, timeout=10):
    """Reads `count` events from /api/events; returns [(id, data dict)]."""
    s = socket.create_connection((st.host, st.port), timeout=timeout)
    req = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % st.port
    for k, v in (headers or {}).items():
        req += "%s: %s\r\n" % (k, v)
    s.sendall((req + "\r\n").encode())
    buf = b""
    events = []
    end = time.time() + timeout
    while len(events) < count and time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        events = range(buf.count(b"\ndata: "))
        if b'"type":"run_finished"' in buf[-4096:] and count > 1000:
            break
    s.close()
    return frames(buf)[:count], buf


def serial(kind):
    """A serial that makes the fake child do `kind`; real mode uses the suite's own switches."""
    return kind + "-%d" % (time.time() * 1000 % 100000)


def main():
    st = Station(SUITE) if MODE == "real" else Station(SUITE, "--serial-pattern", "[%u%d]+%-[%w%-]+")
    try:
        # ---- static files, paths
        status, _, text, r = st.get("/")
        check(status == 200 and b"<html" in text.lower() and r.getheader("Content-Type").startswith("text/html"),
              "GET / serves the built-in panel")
        check("default-src 'self'" in (r.getheader("Content-Security-Policy") or ""), "the page has a CSP")
        check(st.get("/app.js")[0] == 200, "GET /app.js")
        for bad in ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd", "/index.html%00.png",
                    "/%00", "/web/index.html", "//etc/passwd", "/api/../../etc/passwd"]:
            status, _, text, _ = st.get(bad)
            check(status == 404 and b"root:" not in text, "no disk path: %s -> %d" % (bad, status))
        check(st.request("PUT", "/api/state")[0] == 405, "PUT -> 405")
        check(st.get("/api/start")[0] == 405, "GET /api/start -> 405")
        check(st.get("/api/nope")[0] == 404, "unknown API call -> 404")

        # ---- security
        check(st.get("/api/state", host="evil.example:80")[0] == 403, "foreign Host (DNS rebinding) -> 403")
        check(st.get("/api/state", host="localhost:%d" % st.port)[0] == 200, "Host localhost -> 200")
        status, doc, _, _ = st.post("/api/start", {"serial": "X"}, headers={"Origin": "http://evil.example"})
        check(status == 403, "POST with a foreign Origin -> 403")
        status, _, _, _ = st.post("/api/stop", {}, headers={"Origin": "http://127.0.0.1:%d" % st.port})
        check(status == 202, "POST with the panel's own Origin -> 202")
        status, _, _, _ = st.post("/api/start", raw_body="{" + " " * 70000 + "}")
        check(status == 413, "body over 64 KiB -> 413")
        # the same without Content-Length (chunked)
        s = socket.create_connection((st.host, st.port), timeout=10)
        s.sendall(b"POST /api/start HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(40):
                s.sendall(b"1000\r\n" + b" " * 4096 + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        resp = s.recv(200)
        s.close()
        check(resp.startswith(b"HTTP/1.1 413"), "chunked body over 64 KiB -> 413")
        for raw, why in [("{", "malformed"), ("[" * 5000 + "]" * 5000, "deeply nested"),
                         ('{"serial": ' + "[" * 40 + "]" * 40 + "}", "nested 40"),
                         ("[1,2]", "not an object"), ('"x"', "a string"), ("{\"serial\": \"A\u0000\"}", "NUL")]:
            status, doc, _, _ = st.post("/api/start", raw_body=raw)
            check(status == 400 and doc and "error" in doc, "JSON body %s -> 400" % why)

        # ---- start: serial validation
        check(st.post("/api/start", {})[0] == 400, "start without serial -> 400")
        check(st.post("/api/start", {"serial": ""})[0] == 400, "start with empty serial -> 400")
        check(st.post("/api/start", {"serial": 12})[0] == 400, "start with a number serial -> 400")
        check(st.post("/api/start", {"serial": "AB 12"})[0] == 400, "serial with a space -> 400")
        check(st.post("/api/start", {"serial": "A\n1"})[0] == 400, "serial with a newline -> 400")
        check(st.post("/api/start", {"serial": "X" * 200})[0] == 400, "serial too long -> 400")
        check(st.post("/api/start", {"serial": "N1-x", "slot": 7})[0] == 400, "start in a missing slot -> 400")
        s0 = st.state()
        check(s0["slots"][0]["state"] == "idle" and isinstance(s0["slots"][0]["tests"], list),
              "idle state: slots is a list, tests a list")
        check(s0.get("serial_regex"), "state carries the serial pattern for the panel")

        # ---- a run with a dialog; busy; dialogs
        sn = serial("DIALOG-number") if MODE == "fake" else serial("DIALOG-number")
        status, doc, _, _ = st.post("/api/start", {"serial": sn})
        check(status == 202 and re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                                         doc.get("run_id", "")), "start -> 202 with a UUID run_id")
        run_id = doc["run_id"]
        check(st.post("/api/start", {"serial": "N1-x"})[0] == 409, "start while running -> 409")
        end = time.time() + 20
        dialogs = []
        while time.time() < end and not dialogs:
            dialogs = st.get("/api/dialogs")[1]
            time.sleep(0.05)
        check(len(dialogs) == 1 and dialogs[0]["kind"] == "number" and dialogs[0]["slot"] == 1,
              "GET /api/dialogs lists the pending number dialog")
        did = dialogs[0]["id"] if dialogs else "d1"
        check(st.post("/api/dialogs/nope", {"value": 3})[0] == 404, "answer to no such dialog -> 404")
        check(st.post("/api/dialogs/" + did, {"value": 99})[0] == 400, "number above max -> 400")
        check(st.post("/api/dialogs/" + did, {"value": "three"})[0] == 400, "text for a number -> 400")
        check(st.post("/api/dialogs/" + did, {})[0] == 400, "answer without value -> 400")
        status, doc, _, _ = st.post("/api/dialogs/" + did, {"value": 3})
        check(status == 200, "a fitting answer -> 200")
        check(st.post("/api/dialogs/" + did, {"value": 3})[0] == 404, "a second answer -> 404")
        fin = st.wait_finished(run_id)
        check(fin["slots"][0]["status"] == "passed", "the run passed after the answer")

        # ---- events: ids, slot, resume
        events, _ = sse_read(st, count=4)
        check(len(events) == 4 and events[0][0] == "1:1" and events[0][1]["type"] == "run_started",
              "SSE replays the last run from its start")
        check(all(e[1]["slot"] == 1 and e[0] == "1:%d" % e[1]["seq"] for e in events), "id is slot:seq, data has slot")
        resumed, _ = sse_read(st, headers={"Last-Event-ID": "1:2"}, count=2)
        check(resumed and resumed[0][0] == "1:3", "Last-Event-ID 1:2 resumes at 1:3")

        # ---- runs
        status, runs, _, _ = st.get("/api/runs")
        check(status == 200 and runs and runs[0]["run_id"] == run_id, "GET /api/runs lists the run, newest first")
        status, runs, _, _ = st.get("/api/runs?serial=" + sn + "&limit=1")
        check(status == 200 and len(runs) == 1 and runs[0]["serial"] == sn, "GET /api/runs?serial=&limit=")
        check(st.get("/api/runs?serial=NOPE")[1] == [], "runs of an unknown serial: empty list")
        check(st.get("/api/runs?limit=x")[0] == 400, "runs with a bad limit -> 400")
        status, report, _, _ = st.get("/api/runs/" + run_id)
        check(status == 200 and report.get("status") == "passed", "GET /api/runs/RUN_ID gives the report")
        first_run = run_id
        check(st.get("/api/runs/00000000-0000-4000-8000-000000000000")[0] == 404, "unknown run -> 404")
        check(st.get("/api/dialogs/" + did + "/image")[0] == 404, "image of no pending dialog -> 404")

        # ---- stop mid-run: stopped, nothing left behind
        base = set(st.children())  # the process engine's watchdog stays
        status, doc, _, _ = st.post("/api/start", {"serial": serial("SLOW")})
        run_id = doc["run_id"]
        s = st.wait_state(lambda s: s["slots"][0]["current_test"], what="a test to run")
        pid = s["slots"][0].get("pid")
        check(st.get("/api/runs")[1][0]["run_id"] != run_id, "a run still going is not among the recent runs")
        kids = set(st.children()) - base
        check(pid and kids == {pid}, "one run child while running, its pid in the state")
        check(st.post("/api/stop", {"slot": 1})[0] == 202, "stop -> 202")
        fin = st.wait_finished(run_id)
        check(fin["slots"][0]["status"] == "stopped", "stopped run ends 'stopped'")
        end = time.time() + 10
        while time.time() < end and set(st.children()) != base:
            time.sleep(0.1)
        check(set(st.children()) == base and all(not os.path.exists("/proc/%d" % k) for k in kids),
              "no process left after stop (/proc)")

        # ---- a run whose process dies: the station still gives a verdict
        status, doc, _, _ = st.post("/api/start", {"serial": serial("CRASH")})
        fin = st.wait_finished(doc["run_id"])
        check(fin["slots"][0]["status"] == "failed", "a crashed run child ends 'failed'")
        events, _ = sse_read(st, count=200, timeout=2)
        last = [e for i, e in events if e["run_id"] == doc["run_id"]][-1]
        check(last["type"] == "run_finished" and last["status"] == "failed", "the stream still ends with run_finished")
        check(st.proc.poll() is None, "the station survives a crashed run")

        # ---- test code that forges a passing end into its own event stream: the exit status wins
        if MODE == "real":
            status, doc, _, _ = st.post("/api/start", {"serial": serial("DIE")})
            fin = st.wait_finished(doc["run_id"])
            events, _ = sse_read(st, count=400, timeout=2)
            ends = [e for i, e in events if e["run_id"] == doc["run_id"] and e["type"] == "run_finished"]
            check(fin["slots"][0]["status"] == "failed" and len(ends) == 1 and ends[0]["status"] == "failed",
                  "a run whose process exits before its stream ends gets one end, failed (%d)" % len(ends))

            status, doc, _, _ = st.post("/api/start", {"serial": serial("FORGE")})
            fin = st.wait_finished(doc["run_id"])
            check(fin["slots"][0]["status"] == "failed", "a forged passing end: the slot shows failed (exit status 1)")
            events, _ = sse_read(st, count=400, timeout=2)
            mine = [e for i, e in events if e["run_id"] == doc["run_id"]]
            ends = [e for e in mine if e["type"] == "run_finished"]
            # the child's own end waits for its exit: the forged one was never sent, and the
            # real one (exit status 1) took its place
            check(mine[-1]["type"] == "run_finished" and mine[-1]["status"] == "failed" and mine[-1]["exit_code"] == 1,
                  "a forged passing end: the stream ends with a failed run_finished")
            check(len(ends) == 1, "a forged passing end is never sent: %s" % [(e["status"], e.get("source")) for e in ends])

            # a forged passing end, then the process is killed by a signal: no exit status
            # says "passed", so that end is never sent, and the history has no pass
            status, doc, _, _ = st.post("/api/start", {"serial": serial("KILLFORGED")})
            fin = st.wait_finished(doc["run_id"])
            events, _ = sse_read(st, count=400, timeout=2)
            ends = [e for i, e in events if e["run_id"] == doc["run_id"] and e["type"] == "run_finished"]
            check(fin["slots"][0]["status"] == "failed" and len(ends) == 1 and ends[0]["status"] == "failed",
                  "a forged passing end, then killed: one end, failed: %s" % [(e["status"], e.get("source")) for e in ends])
            rec = [r for r in st.get("/api/runs")[1] if r["run_id"] == doc["run_id"]]
            check(len(rec) == 1 and rec[0]["status"] in ("failed", "aborted"),
                  "a forged passing end, then killed: the history has no pass: %s" % [r["status"] for r in rec])

            # test code writes an event with an id far ahead: the real end's id is taken, and
            # the station still ends the stream (with the run's verdict) and goes on
            status, doc, _, _ = st.post("/api/start", {"serial": serial("IDJUMP")})
            fin = st.wait_finished(doc["run_id"])
            check(st.proc.poll() is None, "an event with an id far ahead: the station goes on")
            events, _ = sse_read(st, count=400, timeout=2)
            mine = [(i, e) for i, e in events if e["run_id"] == doc["run_id"]]
            seqs = [int(i.split(":")[1]) for i, _ in mine]
            check(mine[-1][1]["type"] == "run_finished" and mine[-1][1]["exit_code"] == 0
                  and fin["slots"][0]["status"] == "passed" and seqs == sorted(set(seqs)),
                  "an event with an id far ahead: the stream still ends with the run's verdict (passed), ids increasing")

        # ---- a child writing malformed event lines: they are dropped, and take no id
        if MODE == "fake":
            status, doc, _, _ = st.post("/api/start", {"serial": serial("HOSTILE")})
            fin = st.wait_finished(doc["run_id"])
            events, raw = sse_read(st, count=200, timeout=2)
            mine = [(i, e) for i, e in events if e.get("run_id") == doc["run_id"]]
            texts = [e.get("text") for _, e in mine]
            check(b"\r" not in dechunk(raw) and "evil" not in texts and "hi" not in texts
                  and not any("escape" in (t or "") for t in texts), "malformed event lines are not passed on")
            seqs = [int(i.split(":")[1]) for i, _ in mine]
            check(seqs == list(range(1, len(seqs) + 1)) and mine[-1][1]["type"] == "run_finished"
                  and mine[1][1]["type"] == "test_started", "the events after them keep their ids: %s" % seqs[:6])
            t1 = [t for t in fin["slots"][0]["tests"] if t["id"] == "fake::t0001"][0]
            check(fin["slots"][0]["status"] == "passed" and t1["duration"] == 0.001,
                  "the station's state comes from the well-formed events only")

        # ---- the previous run's report and a retest mark
        status, doc, _, _ = st.post("/api/start", {"serial": sn})
        fin = st.wait_state(lambda s: s["slots"][0]["run_id"] == doc["run_id"] and
                            (s["slots"][0]["state"] == "finished" or s["slots"][0]["pending_dialogs"]))
        check(fin["slots"][0]["retest"] is True, "a serial seen before is a retest")
        st.post("/api/stop", {})
        st.wait_finished(doc["run_id"])
    finally:
        code = st.stop()
    check(code == 0, "SIGINT stops the station cleanly (exit 0)")

    # ---- the recent runs and the yield come from the run history: a restarted station has them
    if MODE == "real":
        st = Station(SUITE)
        try:
            status, runs, _, _ = st.get("/api/runs?serial=" + sn)
            check(status == 200 and [r["run_id"] for r in runs][-1:] == [first_run] and runs[0]["retest"] is True
                  and runs[-1]["retest"] is False and runs[-1]["summary"]["passed"] == runs[-1]["summary"]["total"] > 0,
                  "a restarted station lists the earlier runs of a serial (history file), retest marked")
            status, report, _, _ = st.get("/api/runs/" + first_run)
            check(status == 200 and report.get("run_id") == first_run and report.get("status") == "passed",
                  "a restarted station gives an earlier run's report")
            stats = st.state()["stats"]
            check(stats["runs"] >= 4 and stats["serials"] >= 3 and 0 < stats["first_pass_yield"] < 1,
                  "a restarted station's yield counts the earlier runs: %s" % json.dumps(stats))
            status, doc, _, _ = st.post("/api/start", {"serial": sn})
            check(st.state()["slots"][0]["retest"] is True, "a serial from before the restart is a retest")
            st.post("/api/stop", {})
            st.wait_finished(doc["run_id"])
            status, doc, _, _ = st.post("/api/start", {"serial": "N1-new"})
            check(st.state()["slots"][0]["retest"] is False, "a serial the history does not have is no retest")
            st.wait_finished(doc["run_id"])
            runs = st.get("/api/runs?serial=N1-new")[1]
            check(len(runs) == 1 and runs[0]["retest"] is False and "message" not in runs[0],
                  "its recent-runs entry: no retest, no message")
        finally:
            st.stop()
    st = Station("--no-history", SUITE)
    try:
        check(st.get("/api/runs")[1] == [] and st.state()["stats"]["runs"] == 0,
              "--no-history: the station keeps its runs in memory only (none after a restart)")
        status, doc, _, _ = st.post("/api/start", {"serial": "N1-nohist"})
        st.wait_finished(doc["run_id"])
        runs = st.get("/api/runs")[1]
        check(len(runs) == 1 and runs[0]["run_id"] == doc["run_id"] and st.get("/api/runs/" + doc["run_id"])[0] == 200,
              "--no-history: the run is listed and its report served from memory")
    finally:
        st.stop()

    # ---- a panel that stops reading is dropped, never slows the run, and resumes without loss
    st = Station(SUITE, env={"HPLUA_SERVE_SSE_LIMIT": "65536"})
    try:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((st.host, st.port))
        stalled.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        n = 3000
        status, doc, _, _ = st.post("/api/start", {"serial": "N%d-slow" % n})
        t0 = time.time()
        st.wait_finished(doc["run_id"], timeout=60)
        check(time.time() - t0 < 30, "a run finishes while a panel does not read")
        buf = b""
        stalled.settimeout(5)
        try:
            while True:
                chunk = stalled.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            pass
        stalled.close()
        got = frames(buf)
        got = [(i, e) for i, e in got if e["run_id"] == doc["run_id"]]
        check(not any(e["type"] == "run_finished" for _, e in got), "the stalled panel was dropped before the end")
        last = got[-1][0] if got else "1:0"
        rest, _ = sse_read(st, headers={"Last-Event-ID": last}, count=100000, timeout=30)
        seqs = [e["seq"] for _, e in got] + [e["seq"] for _, e in rest if e["run_id"] == doc["run_id"]]
        check(seqs == list(range(1, len(seqs) + 1)) and rest and rest[-1][1]["type"] == "run_finished",
              "resuming with Last-Event-ID %s gives every later event once (%d + %d events)" % (last, len(got), len(rest)))
    finally:
        st.stop()

    # ---- token and bind rules
    st = Station("--bind", "127.0.0.2", SUITE, expect_start=False)
    st.proc.wait(10)
    err = st.proc.stderr.read()
    check(st.proc.returncode == 4 and "--token" in err, "--bind elsewhere without a token refuses to start")
    st.stop()
    st = Station("--bind", "127.0.0.2", SUITE, env={"HPLUA_TOKEN": "s3cret"})
    try:
        check(st.host == "127.0.0.2", "HPLUA_TOKEN allows --bind 127.0.0.2")
        check(st.get("/api/state")[0] == 401, "no token -> 401")
        check(st.get("/")[0] == 401, "no token, static file -> 401")
        check(st.get("/api/state", headers={"Authorization": "Bearer wrong"})[0] == 401, "wrong token -> 401")
        check(st.get("/api/state", headers={"Authorization": "Bearer s3cret"})[0] == 200, "Bearer token -> 200")
        check(st.get("/?token=nope")[0] == 401, "/?token=wrong -> 401")
        status, _, _, r = st.get("/?token=s3cret")
        cookie = r.getheader("Set-Cookie") or ""
        check(status == 303 and "HttpOnly" in cookie and "SameSite=Strict" in cookie, "/?token=T sets the cookie")
        cookie = cookie.split(";")[0]
        check(st.get("/api/state", headers={"Cookie": cookie})[0] == 200, "cookie token -> 200")
        check(st.get("/", headers={"Cookie": cookie})[0] == 200, "cookie token, panel -> 200")
    finally:
        st.stop()

    # ---- configuration file
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "station.lua")
        with open(cfg, "w") as f:
            f.write("return {\n  port = 0,\n  prot = 1,\n  slots = 'two',\n}\n")
        st = Station("--config", cfg, SUITE, expect_start=False)
        st.proc.wait(10)
        err = st.proc.stderr.read()
        check(st.proc.returncode == 4 and cfg + ":3: unknown key 'prot'" in err and cfg + ":4: 'slots' must be" in err,
              "config: unknown key and wrong type named with file:line")
        st.stop()
        with open(cfg, "w") as f:
            f.write("return {\n  stand = { name = 'Line 3', location = 'Hall B' },\n  suite_name = 'Demo board',\n"
                    "  serial_pattern = 'SN%d%d%d%d',\n  port = 1,\n}\n")
        st = Station("--config", cfg, SUITE)   # --port 0 on the command line wins over port = 1
        try:
            s = st.state()
            check(s["station"] == "Line 3" and s["suite"] == "Demo board", "config: stand name and suite name")
            check(st.post("/api/start", {"serial": "SN12"})[0] == 400, "config serial_pattern rejects SN12")
            check(st.post("/api/start", {"serial": "SN1234x"})[0] == 400, "the whole serial must match")
        finally:
            st.stop()

    # ---- slots: hp.lock and hp.barrier with the station as the supervisor (API 10)
    st = Station("--slots", "2", "--json", "report.json", SUITE, expect_start=False)
    try:
        st.proc.wait(10)
    except subprocess.TimeoutExpired:
        pass  # it started: the check below fails and stop() ends it
    code = st.proc.poll()
    err = st.proc.stderr.read() if code is not None else ""
    check(code == 4 and "--json report.json with --slots 2: every slot would write the same file" in err,
          "slots: --json without {slot} or {run_id} is a usage error: " + err)
    st.stop()
    if MODE == "real":
        slots_dir = os.path.join(HERE, "..", "fixtures", "slots")
        st = Station("--slots", "2", os.path.join(slots_dir, "cycle"))
        try:
            ids = [st.post("/api/start", {"serial": "SN-C%d" % i, "slot": i})[1]["run_id"] for i in (1, 2)]
            s = st.wait_state(lambda s: all(x["state"] == "finished" for x in s["slots"]), 30, "both slots")
            by = {x["slot"]: x for x in s["slots"]}
            check({by[1]["run_id"], by[2]["run_id"]} == set(ids), "slots: both runs ran")
            # slot 1 normally asks first and slot 2 closes the cycle; under load the other way
            bad = 2 if by[2]["status"] == "failed" else 1
            msg = by[bad]["tests"][0]["message"] or ""
            check(by[3 - bad]["status"] == "passed", "slots: the other slot gets both locks")
            check(by[bad]["status"] == "failed" and ("wait cycle between slots: slot %d waits for lock" % bad) in msg,
                  "slots: one slot fails naming the lock cycle: " + msg)
        finally:
            st.stop()

    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    try:
        main()
    finally:
        import shutil
        shutil.rmtree(HISTORY_DIR, ignore_errors=True)
