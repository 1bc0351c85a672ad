#!/usr/bin/env python3
"""The hostile academy of benches/hostile.sh: floods the host from one academy (globex) until told to stop.

    hostile.py PORT HOST ADMIN_COOKIE PLUGIN_ID SECONDS [ATTACKS]

ATTACKS is a comma-separated choice of `loop,sleep,login,upload,bulk,report,kv,files` (default: all of them).
The `kv` and `files` attacks call the plugins whose ids are in $KV_PLUGIN (the `kv-user` test guest) and
$FILES_PLUGIN (the `files` test guest).

Runs for SECONDS, with threads of its own (stdlib only):
  - 48 callers invoking the `misbehave` plugin's spinning hook (`loop`) again and again;
  - 300 callers invoking its sleeping hook (`sleep`);
  - 32 sign-in attempts with wrong passwords at a time;
  - 4 uploads of a 40 MB file at a time;
  - 4 callers starting bulk enrollments of the whole academy into a course, again and again;
  - 8 callers running the completion-by-organization report;
  - 32 callers of the `kv-user` plugin, each call a key-value write;
  - 8 callers of the `files` plugin writing 8 MiB files under new names until the academy's quota stops them;
and one probe of /healthz every 200 ms. Prints one JSON line: answers by kind and status, and the probes
that failed.
"""

import http.client
import json
import os
import sys
import threading
import time
from collections import Counter

port, host, cookie, plugin, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
attacks = set((sys.argv[6] if len(sys.argv) > 6 else "loop,sleep,login,upload,bulk,report,kv,files").split(","))
deadline = time.monotonic() + seconds
counts = Counter()
lock = threading.Lock()
BIG = b"\0asm" + b"\x0d\x00\x01\x00" + b"x" * (40 * 1024 * 1024)


def request(method, path, body=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.status
    except Exception as e:  # a refused or reset connection counts as what it is
        return type(e).__name__
    finally:
        conn.close()


def note(kind, status):
    with lock:
        counts[f"{kind} {status}"] += 1


def invoke(name, target=None):
    body = json.dumps({"hook": "on-signup", "input": {"email": "x@example.test", "name": name, "locale": None,
                                                      "profile": [], "invited_to": None}})
    headers = {"Cookie": cookie, "Content-Type": "application/json", "Origin": f"http://{host}"}
    while time.monotonic() < deadline:
        note(f"invoke {name}", request("POST", f"/api/v1/plugins/{target or plugin}/invoke", body, headers))


def guess(i):
    body = json.dumps({"email": f"admin@globex.test", "password": f"wrong-password-{i}"})
    while time.monotonic() < deadline:
        note("login", request("POST", "/api/v1/auth/login", body, {"Content-Type": "application/json"}))


def upload():
    boundary = "hostileboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\n"
            "name = \"big\"\nversion = \"1.0.0\"\nkind = \"enrollment\"\n"
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"component\"; filename=\"big.wasm\"\r\n"
            "Content-Type: application/wasm\r\n\r\n").encode()
    body = head + BIG + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Cookie": cookie, "Content-Type": f"multipart/form-data; boundary={boundary}",
               "Origin": f"http://{host}"}
    while time.monotonic() < deadline:
        note("upload", request("POST", "/api/v1/plugins", body, headers, timeout=60))


def fetch_json(path):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    try:
        conn.request("GET", path, headers={"Host": host, "Cookie": cookie})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def bulk(course, org):
    body = json.dumps({"course_id": course, "org_id": org})
    headers = {"Cookie": cookie, "Content-Type": "application/json", "Origin": f"http://{host}"}
    while time.monotonic() < deadline:
        note("bulk enrollment", request("POST", "/api/v1/enrollments/bulk", body, headers))


def fill(worker):
    headers = {"Cookie": cookie, "Content-Type": "application/json", "Origin": f"http://{host}"}
    n = 0
    while time.monotonic() < deadline:
        n += 1
        params = {"op": "fill", "path": f"fill-{worker}-{n}.bin", "size": str(8 * 1024 * 1024)}
        body = json.dumps({"params": params, "cursor": None})
        note("files fill", request("POST", f"/api/v1/plugin-reports/{os.environ['FILES_PLUGIN']}/fs", body, headers))


def report():
    while time.monotonic() < deadline:
        note("report", request("GET", "/api/v1/reports/completion-by-org", headers={"Cookie": cookie}))


def probe():
    while time.monotonic() < deadline:
        status = request("GET", "/healthz", timeout=5)
        note("healthz", status)
        time.sleep(0.2)


threads = ([threading.Thread(target=invoke, args=("loop",)) for _ in range(48 if "loop" in attacks else 0)]
           + [threading.Thread(target=invoke, args=("sleep",)) for _ in range(300 if "sleep" in attacks else 0)]
           + [threading.Thread(target=guess, args=(i,)) for i in range(32 if "login" in attacks else 0)]
           + [threading.Thread(target=upload) for _ in range(4 if "upload" in attacks else 0)]
           + [threading.Thread(target=report) for _ in range(8 if "report" in attacks else 0)]
           + [threading.Thread(target=invoke, args=("kv", os.environ.get("KV_PLUGIN")))
              for _ in range(32 if "kv" in attacks else 0)]
           + [threading.Thread(target=fill, args=(i,)) for i in range(8 if "files" in attacks else 0)]
           + [threading.Thread(target=probe)])
if "bulk" in attacks:
    course = fetch_json("/api/v1/courses")[0]["id"]
    root = next(o["id"] for o in fetch_json("/api/v1/orgs?limit=500")["items"] if o.get("parent_id") is None)
    threads += [threading.Thread(target=bulk, args=(course, root)) for _ in range(4)]
for t in threads:
    t.daemon = True
    t.start()
for t in threads:
    t.join(timeout=max(0.0, deadline - time.monotonic()) + 90)
print(json.dumps(dict(sorted(counts.items()))))
