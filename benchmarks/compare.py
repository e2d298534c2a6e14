"""requests-oauthcc side by side with the libraries users would otherwise pick.

    python3 -m pip install -r benchmarks/requirements.txt
    python3 -m pip install .                 # not editable: section 4 refuses an editable install
    python3 benchmarks/compare.py            # add --no-callgrind to skip valgrind
    python3 benchmarks/compare.py --only per-request   # section 1, Bearer rows (~1 min)
    python3 benchmarks/compare.py --only dpop          # DPoP's per-request cost (~1 min)
    python3 benchmarks/compare.py --only import        # section 4 alone
    python3 benchmarks/compare.py --only latency       # section 5: API latency across refreshes
    python3 benchmarks/compare.py --only telemetry     # section 1 with on_event= and otel on

Run it from a virtual environment holding the package installed normally (``python3 -m venv
/tmp/venv && /tmp/venv/bin/pip install .``): an editable install or a source tree on
``PYTHONPATH`` imports differently (a path finder hook, no byte-compiled files installed), so
section 4 refuses to measure it.

Everything runs on this machine against the local authorization server; results are
ratios measured in one run. Contenders: no auth, a static `Authorization: Bearer` header
(the floor), requests-oauthcc, requests-oauth2client, Authlib's OAuth2Session
(grant_type="client_credentials"), requests-oauthlib with BackendApplicationClient,
and requests-auth's OAuth2ClientCredentials. The per-request cost of requests-oauthcc is
also measured with a DPoP-bound token (RFC 9449; ES256 and EdDSA keys: a fresh signed
proof on every request), against its own Bearer path and the static header.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # peers refuse http otherwise
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

import requests

from requests_oauthcc import ClientCredentialsAuth, DPoPKey
from requests_oauthcc.testing import OAuthTestServer

CLIENT, SECRET = "bench-client", "bench-secret"
API = "https://api.example.com/data"


class StaticBearer(requests.auth.AuthBase):
    """The floor: a fixed header."""

    def __init__(self, token: str) -> None:
        self.header = "Bearer " + token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self.header
        return r


@dataclass
class Contender:
    """``auth``: what is attached per request; ``get``: how a user makes a call with it;
    ``warm``: how its token is fetched when ``get`` cannot (the API takes no DPoP token)."""

    name: str
    auth: Callable[[requests.PreparedRequest], requests.PreparedRequest]
    get: Callable[[str], requests.Response]
    warm: Callable[[], None] | None = None

    def fetch_token(self, srv: OAuthTestServer) -> None:
        """Fetch and cache the token from ``srv``, as the first call does."""
        if self.warm is not None:
            self.warm()
        else:
            self.get(srv.resource_url).raise_for_status()


def _session_get(auth: Any) -> Callable[[str], requests.Response]:
    session = requests.Session()
    session.auth = auth
    return lambda url: session.get(url, timeout=10)


def make(name: str, server: OAuthTestServer) -> Contender:
    """A contender, configured for ``server``, its token not fetched yet."""
    url = server.token_url
    if name == "no auth":
        return Contender(name, lambda r: r, _session_get(None))
    if name == "static header":
        token = requests.post(url, data={"grant_type": "client_credentials"},
                              auth=(CLIENT, SECRET), timeout=10).json()["access_token"]
        auth = StaticBearer(token)
        return Contender(name, auth, _session_get(auth))
    if name == "requests-oauthcc":
        ours = ClientCredentialsAuth(url, CLIENT, SECRET)
        return Contender(name, ours, _session_get(ours))
    if name == "requests-oauthcc on_event":
        heard = ClientCredentialsAuth(url, CLIENT, SECRET, on_event=lambda event: None)
        return Contender(name, heard, _session_get(heard))
    if name == "requests-oauthcc otel":  # global: made last, or every auth after it records
        from requests_oauthcc import otel

        otel.instrument()  # the API's providers (no SDK installed: no-op spans and metrics)
        traced = ClientCredentialsAuth(url, CLIENT, SECRET)
        return Contender(name, traced, _session_get(traced))
    if name in DPOP_NAMES:  # the local server binds tokens to a proof's key, as real ones do
        key = DPoPKey.generate(name.rpartition(" ")[2])
        dpop = ClientCredentialsAuth(url, CLIENT, SECRET, dpop=key)

        def warm() -> None:  # the token endpoint, as for Bearer; the holder keeps the token
            assert dpop.fetch_token().dpop, "the server must answer with a DPoP token"

        return Contender(name, dpop, _session_get(dpop), warm)
    if name == "requests-oauth2client":
        from requests_oauth2client import OAuth2Client, OAuth2ClientCredentialsAuth

        client = OAuth2Client(url, client_id=CLIENT, client_secret=SECRET, testing=True)
        peer = OAuth2ClientCredentialsAuth(client)
        return Contender(name, peer, _session_get(peer))
    if name == "Authlib OAuth2Session":
        from authlib.integrations.requests_client import OAuth2Session

        session = OAuth2Session(CLIENT, SECRET, token_endpoint=url,
                                grant_type="client_credentials")

        def authlib_get(u: str) -> requests.Response:
            if not session.token:  # what users write: fetch once; expiry is then handled
                session.fetch_token()
            return session.get(u, timeout=10)

        return Contender(name, session.token_auth, authlib_get)
    if name == "requests-oauthlib":
        from oauthlib.oauth2 import BackendApplicationClient
        from requests_oauthlib import OAuth2, OAuth2Session

        client = BackendApplicationClient(client_id=CLIENT)
        oauth = OAuth2Session(client=client)
        state: dict[str, Any] = {}

        def get(u: str) -> requests.Response:
            if not oauth.token:  # what users write: fetch once, then call
                state["token"] = oauth.fetch_token(url, client_id=CLIENT,
                                                   client_secret=SECRET, timeout=10)
            return oauth.get(u, timeout=10)

        def attach(r: requests.PreparedRequest) -> requests.PreparedRequest:
            auth = state.get("auth")
            if auth is None:
                get(server.resource_url)
                auth = state["auth"] = OAuth2(client=client, token=oauth.token)
            result: requests.PreparedRequest = auth(r)
            return result

        return Contender(name, attach, get)
    if name == "requests-auth":
        from requests_auth import OAuth2, OAuth2ClientCredentials

        OAuth2.token_cache.clear()
        peer = OAuth2ClientCredentials(url, client_id=CLIENT, client_secret=SECRET)
        return Contender(name, peer, _session_get(peer))
    raise ValueError(name)


NAMES = ["no auth", "static header", "requests-oauthcc", "requests-oauth2client",
         "Authlib OAuth2Session", "requests-oauthlib", "requests-auth"]
PEERS = NAMES[2:]
DPOP_NAMES = ["requests-oauthcc DPoP ES256", "requests-oauthcc DPoP EdDSA"]
TELEMETRY_NAMES = ["requests-oauthcc on_event", "requests-oauthcc otel"]
"""requests-oauthcc listened to (issue #15): the per-request path must not change."""
"""requests-oauthcc with ``dpop=``, a DPoP-bound token held: per-request cost only (the
throughput of a local API that checks each proof would measure the server's verification)."""


def server(lifetime: float = 3600) -> OAuthTestServer:
    """The local server (it issues DPoP-bound tokens to token requests with a proof)."""
    return OAuthTestServer({CLIENT: SECRET}, token_lifetime=lifetime).start()


# -- 1. per-request overhead, in process -------------------------------------------------


def overhead(names: list[str]) -> dict[str, float]:
    """Seconds per attach with a valid cached token (best of repeats)."""
    srv = server()
    try:
        contenders = [make(n, srv) for n in names]
        for c in contenders:
            if c.name != "no auth":  # "no auth" gets a 401, of course
                c.fetch_token(srv)
        prepared = requests.Request("GET", API).prepare()

        def once(c: Contender) -> None:
            prepared.hooks = {"response": []}  # a fresh hook list, as each request has
            c.auth(prepared)

        number = 20_000
        best = {c.name: math_inf() for c in contenders}
        for _ in range(7):  # interleaved, so drift hits every contender alike
            for c in contenders:
                best[c.name] = min(best[c.name], timeit.timeit(lambda c=c: once(c), number=number))
        return {name: t / number for name, t in best.items()}
    finally:
        srv.stop()


def math_inf() -> float:
    return float("inf")


# -- 1b. instruction counts under callgrind ------------------------------------------------


def callgrind_worker(name: str, calls: int) -> None:
    srv = server()
    c = make(name, srv)
    if c.warm is not None:
        c.warm()
    else:
        c.get(srv.resource_url)
    prepared = requests.Request("GET", API).prepare()
    for _ in range(calls):
        prepared.hooks = {"response": []}
        c.auth(prepared)
    srv.stop()


def instructions(name: str, low: int = 200, high: int = 2200) -> float | None:
    """Instructions per attach: the difference of two runs, divided by the extra calls.

    PYTHONHASHSEED is fixed so that both runs lay out their dicts alike.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    totals = []
    for calls in (low, high):
        out = tempfile.mktemp(suffix=".callgrind")
        result = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--callgrind-worker", name, str(calls)],
            capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONHASHSEED": "0"})
        match = re.search(r"Collected : (\d+)", result.stderr)
        if not match or result.returncode != 0:  # a failed worker counts nothing useful
            return None
        totals.append(int(match.group(1)))
        os.unlink(out)
    return (totals[1] - totals[0]) / (high - low)


# -- 2. loopback throughput ----------------------------------------------------------------


def throughput(rounds: int = 10, per_round: int = 300) -> dict[str, float]:
    """Requests per second through a Session to the local API, rounds interleaved."""
    srv = server()
    try:
        contenders = [make(n, srv) for n in ("static header", "requests-oauthcc")]
        for c in contenders:
            c.get(srv.resource_url).raise_for_status()
        rates: dict[str, list[float]] = {c.name: [] for c in contenders}
        for round_number in range(rounds):
            order = contenders if round_number % 2 == 0 else contenders[::-1]  # no first-mover bias
            for c in order:
                started = time.perf_counter()
                for _ in range(per_round):
                    c.get(srv.resource_url)
                rates[c.name].append(per_round / (time.perf_counter() - started))
        return {name: statistics.median(r) for name, r in rates.items()}
    finally:
        srv.stop()


# -- 3. token requests under concurrency ---------------------------------------------------


def _threads(n: int, target: Callable[[], None]) -> None:
    barrier = threading.Barrier(n)

    def run() -> None:
        barrier.wait()
        target()

    pool = [threading.Thread(target=run) for _ in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


@dataclass
class Counts:
    tokens: int
    failures: int  # 401s returned to callers, plus exceptions


def _calls(c: Contender, url: str, counts: dict[str, int], lock: threading.Lock) -> None:
    try:
        status = c.get(url).status_code
        key = "ok" if status == 200 else "fail"
    except Exception:
        key = "fail"
    with lock:
        counts[key] = counts.get(key, 0) + 1


def cold_start(name: str) -> Counts:
    srv = server()
    try:
        c, counts, lock = make(name, srv), {}, threading.Lock()
        _threads(32, lambda: _calls(c, srv.resource_url, counts, lock))
        return Counts(srv.token_requests, counts.get("fail", 0))
    finally:
        srv.stop()


def across_expiries(name: str, seconds: float = 6.0, lifetime: float = 2.0) -> Counts:
    srv = server(lifetime)
    try:
        c, counts, lock = make(name, srv), {}, threading.Lock()
        c.get(srv.resource_url)
        stop = time.monotonic() + seconds

        def loop() -> None:
            while time.monotonic() < stop:
                _calls(c, srv.resource_url, counts, lock)

        _threads(32, loop)
        return Counts(srv.token_requests, counts.get("fail", 0))
    finally:
        srv.stop()


def after_revocation(name: str) -> Counts:
    srv = server()
    try:
        c, counts, lock = make(name, srv), {}, threading.Lock()
        c.get(srv.resource_url)
        before = srv.token_requests
        srv.revoke_all()
        _threads(32, lambda: _calls(c, srv.resource_url, counts, lock))
        return Counts(srv.token_requests - before, counts.get("fail", 0))
    finally:
        srv.stop()


# -- 4. import time --------------------------------------------------------------------------

IMPORTS = {
    "requests-oauthcc": "from requests_oauthcc import ClientCredentialsAuth",
    "requests": "import requests",
}
"""What users write, and the floor it is compared with."""

_INSTALL_CHECK = """
import json, os, site, sys, sysconfig
from importlib import metadata
import requests_oauthcc
where = os.path.realpath(os.path.dirname(requests_oauthcc.__file__))
roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
roots.add(site.getusersitepackages())
in_site = any(where.startswith(os.path.realpath(r) + os.sep) for r in roots)
try:
    direct = json.loads(metadata.distribution("requests-oauthcc").read_text("direct_url.json")
                        or "{}")
except metadata.PackageNotFoundError:
    direct = {}
print(json.dumps({"where": where, "in_site": in_site,
                  "editable": bool(direct.get("dir_info", {}).get("editable"))}))
"""


def _fresh_python(code: str) -> str:
    """The output of ``code`` in a fresh interpreter started in an empty directory: the
    current directory is the first place imports look, so the source tree would shadow the
    installed package, and a crowded one (``/tmp``) would add its listing to the time."""
    with tempfile.TemporaryDirectory() as empty:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, cwd=empty).stdout


def not_installed_normally() -> str | None:
    """Why the package this interpreter imports is not a normal install, or ``None``.

    A normal install lies in site-packages and is not editable (PEP 610's
    ``direct_url.json`` says ``dir_info.editable``): an editable install or a source tree on
    ``PYTHONPATH`` goes through other finders and may lack byte-compiled files, which
    measures something users do not run.
    """
    import json

    found = json.loads(_fresh_python(_INSTALL_CHECK))
    if found["editable"]:
        return f"requests-oauthcc is an editable install ({found['where']})"
    if not found["in_site"]:
        return f"requests_oauthcc is imported from {found['where']}, not site-packages"
    return None


def import_seconds(runs: int = 15) -> dict[str, list[tuple[float, float]]]:
    """``(wall, cpu)`` seconds each statement of :data:`IMPORTS` takes, timed inside
    ``runs`` fresh interpreters each (``perf_counter`` and ``process_time`` around the
    statement alone: the interpreter's start is not counted), the two interleaved with
    alternating order after one warm-up each."""
    def once(statement: str) -> tuple[float, float]:
        code = ("import time; t, c = time.perf_counter(), time.process_time(); "
                f"{statement}; print(time.perf_counter() - t, time.process_time() - c)")
        wall, cpu = _fresh_python(code).split()
        return float(wall), float(cpu)

    for statement in IMPORTS.values():  # byte-code and page caches warm for both
        once(statement)
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in IMPORTS}
    for run in range(runs):
        order = list(IMPORTS) if run % 2 == 0 else list(IMPORTS)[::-1]
        for name in order:
            seconds[name].append(once(IMPORTS[name]))
    return seconds


def import_section(runs: int = 15) -> bool:
    """Section 4; ``False`` if the package is not installed normally (nothing measured).

    The ratio is of the medians of wall time (what a user waits for); the CPU time ratio
    is printed too, as a check on a loaded machine, where wall time is the noisier one.
    """
    reason = not_installed_normally()
    if reason is not None:
        print(f"\n4. import time: not measured: {reason}. Install the package normally "
              "into a virtual environment and run this script with its python:\n"
              "   python3 -m venv --system-site-packages /tmp/venv-bench && "
              "/tmp/venv-bench/bin/pip install --no-deps .\n"
              "   /tmp/venv-bench/bin/python benchmarks/compare.py --only import")
        return False
    seconds = import_seconds(runs)
    ours, base = (statistics.median(w for w, _ in seconds[n]) for n in IMPORTS)
    ours_cpu, base_cpu = (statistics.median(c for _, c in seconds[n]) for n in IMPORTS)
    print(f"\n4. `{IMPORTS['requests-oauthcc']}`: {ours / base:.3f}x `import requests` "
          f"({ours * 1000:.1f} ms vs {base * 1000:.1f} ms, medians of {runs} interleaved fresh "
          f"processes, the import statement alone); CPU time {ours_cpu / base_cpu:.3f}x "
          f"({ours_cpu * 1000:.1f} ms vs {base_cpu * 1000:.1f} ms)")
    return True


# -- 5. API latency across token refreshes -----------------------------------------------


def _latency_server(lifetime: float | None, delay: float, conn: Any) -> None:
    """In a child process (so that its threads do not share the benchmark's GIL): the
    local server with ``lifetime`` tokens answering token requests after ``delay`` s."""
    srv = OAuthTestServer({CLIENT: SECRET}, token_lifetime=lifetime, token_delay=delay).start()
    try:
        conn.send((srv.token_url, srv.resource_url))
        conn.recv()  # until told to stop
        conn.send(srv.token_requests)
    finally:
        srv.stop()


@dataclass
class Latencies:
    seconds: list[float]  # one per API call, sorted
    tokens: int  # token requests, the first one included
    failures: int

    def quantile(self, q: float) -> float:
        return self.seconds[min(len(self.seconds) - 1, int(q * len(self.seconds)))]


def api_latencies(lifetime: float | None, *, seconds: float = 8.0, threads: int = 32,
                  delay: float = 0.05) -> Latencies:
    """Latency of each call of ``threads`` threads (one Session each, one auth for all)
    calling the local API for ``seconds``, the token endpoint answering after ``delay`` s
    and granting ``lifetime`` s tokens (``None``: no ``expires_in``, never refreshed). The
    first token is fetched before the clock starts."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=_latency_server, args=(lifetime, delay, theirs))
    child.start()
    try:
        token_url, resource_url = ours.recv()
        auth = ClientCredentialsAuth(token_url, CLIENT, SECRET)
        auth.fetch_token()
        results: list[float] = []
        failures: list[int] = []
        stop = time.monotonic() + seconds

        def loop() -> None:
            session, mine, failed = requests.Session(), [], 0
            session.auth = auth
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    ok = session.get(resource_url, timeout=10).status_code == 200
                except requests.RequestException:
                    ok = False
                mine.append(time.perf_counter() - started)
                failed += not ok
            results.extend(mine)  # list.extend is atomic under the GIL
            failures.append(failed)

        _threads(threads, loop)
        ours.send("stop")
        return Latencies(sorted(results), ours.recv(), sum(failures))
    finally:
        ours.close()  # a child still waiting for "stop" (the run failed) gets EOF and ends
        child.join(10)
        if child.is_alive():
            child.terminate()


def latency_section() -> None:
    """Section 5 (issue #14, part 1): p99 and maximum API latency with 2 s tokens, whose
    refreshes each make one token request answered after 50 ms, against the same run with a
    token that never expires."""
    runs = {"never expires": api_latencies(None), "2 s tokens": api_latencies(2.0)}
    print("\n5. API latency, 32 threads for 8 s, token endpoint answering after 50 ms")
    print("| token          | calls  | p50      | p99      | max      | token requests "
          "| failed |")
    print("|----------------|--------|----------|----------|----------|----------------"
          "|--------|")
    for name, run in runs.items():
        print(f"| {name:<14} | {len(run.seconds):>6} | {run.quantile(0.5) * 1e3:>5.1f} ms "
              f"| {run.quantile(0.99) * 1e3:>5.1f} ms | {run.seconds[-1] * 1e3:>5.1f} ms "
              f"| {run.tokens:>14} | {run.failures:>6} |")


# -- report ------------------------------------------------------------------------------------


def above_harness(counts: dict[str, float | None], name: str) -> float | None:
    """Instructions of ``name`` per call over the static header's, the benchmark loop's own
    cost (the "no auth" contender, an auth that does nothing) subtracted from both."""
    ir, static, loop = (counts.get(n) for n in (name, "static header", "no auth"))
    if ir is None or static is None or loop is None or static <= loop:
        return None
    return (ir - loop) / (static - loop)


def per_request(names: list[str], *, callgrind: bool) -> None:
    """Section 1: time and instructions per attach, as ratios to the static header (the
    instructions also with the loop subtracted, the basis of issue #14's 1.7x target); the
    DPoP rows also as ratios to requests-oauthcc's Bearer path."""
    seconds = overhead(names)
    static = seconds["static header"]
    counts = {n: instructions(n) for n in names} if callgrind else {}
    print("\n1. per-request overhead with a valid cached token (in process)")
    print(f"| {'contender':<27} | time vs static | instructions/call | vs static "
          "| vs static, loop subtracted |")
    print(f"|{'-' * 29}|----------------|-------------------|-----------|"
          "----------------------------|")
    for name in names:
        ir = counts.get(name)
        static_ir = counts.get("static header")
        ir_text = f"{ir:>17,.0f}" if ir is not None else f"{'n/a':>17}"
        ratio = f"{ir / static_ir:>8.2f}x" if ir is not None and static_ir else f"{'n/a':>9}"
        above = above_harness(counts, name) if name != "no auth" else None
        above_text = f"{above:>25.2f}x" if above is not None else f"{'':>26}"
        print(f"| {name:<27} | {seconds[name] / static:>13.2f}x | {ir_text} | {ratio} "
              f"| {above_text} |")
    bearer, bearer_ir = seconds["requests-oauthcc"], counts.get("requests-oauthcc")
    for name in (n for n in DPOP_NAMES if n in names):
        ir = counts.get(name)
        ir_text = (f", {ir / bearer_ir:.1f}x in instructions ({ir:,.0f} vs {bearer_ir:,.0f})"
                   if ir is not None and bearer_ir else "")
        print(f"   {name}: {seconds[name] / bearer:.1f}x the Bearer path in time "
              f"({seconds[name] * 1e6:.1f} vs {bearer * 1e6:.2f} us per request){ir_text}")


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description="compare with peer libraries")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--callgrind-worker", nargs=2, metavar=("NAME", "CALLS"))
    parser.add_argument("--only",
                        choices=["per-request", "dpop", "telemetry", "import", "latency"],
                        help="per-request: section 1 for requests-oauthcc's Bearer path, the "
                             "static header and the loop alone; dpop: the same with the DPoP "
                             "rows; telemetry: with on_event= and OpenTelemetry instrumented; "
                             "import: section 4; latency: section 5")
    parser.add_argument("--import-runs", type=int, default=15,
                        help="fresh processes per statement in section 4 (at least 9)")
    args = parser.parse_args()
    if args.callgrind_worker:
        callgrind_worker(args.callgrind_worker[0], int(args.callgrind_worker[1]))
        return
    if args.import_runs < 9:
        parser.error("--import-runs: at least 9")

    print(f"date {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, requests {version('requests')}")
    print("versions: " + ", ".join(f"{d} {version(d)}" for d in (
        "requests-oauthcc", "requests-oauth2client", "Authlib", "requests-oauthlib",
        "requests-auth")))

    if args.only == "import":
        sys.exit(0 if import_section(args.import_runs) else 2)
    if args.only == "latency":
        latency_section()
        return
    bearer_rows = ["no auth", "static header", "requests-oauthcc"]
    extra = {"dpop": DPOP_NAMES, "telemetry": TELEMETRY_NAMES}
    if args.only in ("per-request", "dpop", "telemetry"):
        per_request(bearer_rows + extra.get(args.only, []), callgrind=not args.no_callgrind)
        return
    per_request(NAMES + DPOP_NAMES + TELEMETRY_NAMES, callgrind=not args.no_callgrind)

    rates = throughput()
    ratio = rates["requests-oauthcc"] / rates["static header"]
    print(f"\n2. loopback throughput through a Session: requests-oauthcc at {ratio:.1%} of the "
          f"static header ({rates['requests-oauthcc']:.0f} vs {rates['static header']:.0f} "
          "req/s, median of 10 interleaved rounds)")

    print("\n3. token requests (and 401s or errors returned to callers)")
    print(f"| {'contender':<24} | 32 threads cold | 6 s of 2 s tokens, 32 threads "
          "| revocation hits 32 threads |")
    print(f"|{'-' * 26}|-----------------|-------------------------------|"
          "----------------------------|")
    for name in PEERS:
        cold, live, revoked = cold_start(name), across_expiries(name), after_revocation(name)
        print(f"| {name:<24} | {cold.tokens:>3} ({cold.failures} failed) "
              f"| {live.tokens:>3} tokens ({live.failures} failed) "
              f"| {revoked.tokens:>3} ({revoked.failures} failed) |")

    import_section(args.import_runs)
    latency_section()


if __name__ == "__main__":
    main()
