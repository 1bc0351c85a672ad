#!/usr/bin/env python3
"""Single sign-on round trips against a running Aula and the test OpenID provider (benches/sso.sh starts
both). For each round: GET /sso/<provider> on the academy (the start: a sign-in remembered, the browser sent
to the provider), the provider's pages (its login and consent forms the first time; afterwards the
provider's own session sends the browser straight back), then GET /sso/callback (code exchange, ID token
checks, the account found and updated by the mapping, a session opened). Prints the latency of the start
and of the callback as p50/p95/max, and of a password sign-in of the same academy for comparison.

    python3 benches/sso.py PORT HOST PROVIDER_ID ROUNDS
"""
import re
import statistics
import sys
import time
from urllib.parse import urljoin

import requests

port, host, provider, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
callback_prefix = f"http://{host}/sso/callback"
at_provider = requests.Session()


def through_provider(url):
    """Follow the provider's pages until it sends the browser back to the academy; answer that URL."""
    form = None
    for _ in range(20):
        r = at_provider.post(url, data=form, allow_redirects=False) if form else at_provider.get(url, allow_redirects=False)
        form = None
        if r.status_code in (302, 303):
            url = urljoin(url, r.headers["location"])
            if url.startswith(callback_prefix):
                return url
            continue
        r.raise_for_status()
        url = urljoin(url, re.search(r'<form[^>]*action="([^"]+)"', r.text).group(1))
        form = ({"prompt": "login", "login": "alice", "password": "x"} if 'value="login"' in r.text
                else {"prompt": "consent"})
    raise SystemExit("the provider did not send the browser back")


def ms(since):
    return (time.perf_counter() - since) * 1000


starts, callbacks, passwords = [], [], []
for i in range(rounds):
    t = time.perf_counter()
    r = requests.get(f"{base}/sso/{provider}?next=/learn", headers={"Host": host}, allow_redirects=False)
    starts.append(ms(t))
    assert r.status_code == 303, (r.status_code, r.text[:300])
    back = through_provider(r.headers["location"])
    path = back[len(f"http://{host}"):]
    t = time.perf_counter()
    r = requests.get(f"{base}{path}", headers={"Host": host}, allow_redirects=False)
    callbacks.append(ms(t))
    assert r.status_code == 303 and "aula_session=" in r.headers.get("set-cookie", ""), (r.status_code, r.text[:500])
    t = time.perf_counter()
    r = requests.post(f"{base}/api/v1/auth/login", headers={"Host": host},
                      json={"email": "nora.north@acme.test", "password": "aula-demo-2026"})
    passwords.append(ms(t))
    assert r.status_code == 200, r.text


def line(name, xs):
    xs = sorted(xs[1:])  # the first round discovers the provider and signs in at it: reported apart
    p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    return f"{name:<28} p50 {statistics.median(xs):6.1f} ms   p95 {p(0.95):6.1f} ms   max {xs[-1]:6.1f} ms"


print(f"{rounds} single sign-on round trips on {host} (first round: start {starts[0]:.1f} ms, callback {callbacks[0]:.1f} ms)")
print(line("start (/sso/<provider>)", starts))
print(line("callback -> session", callbacks))
print(line("password sign-in", passwords))
