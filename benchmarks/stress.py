"""Stress: many threads, one Session, short-lived tokens, random revocations.

    python3 benchmarks/stress.py [--threads 32] [--seconds 10] [--lifetime 1]

Prints requests made, token requests, 401s surfaced to callers and unexpected exceptions.
Every request here is replayable, so the last two must be 0; the exit status says so.
Not a timed test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter

import requests

from requests_oauthcc import ClientCredentialsAuth
from requests_oauthcc.testing import OAuthTestServer


def main() -> int:
    parser = argparse.ArgumentParser(description="stress one auth object from many threads")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--lifetime", type=float, default=1.0, help="token lifetime (s)")
    parser.add_argument("--revoke-every", type=float, default=0.5,
                        help="mean seconds between revocations of every token")
    args = parser.parse_args()

    counts: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    with OAuthTestServer({"stress": "stress-secret"}, token_lifetime=args.lifetime) as server:
        session = requests.Session()
        session.auth = ClientCredentialsAuth(server.token_url, "stress", "stress-secret")
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=args.threads))

        def worker(n: int) -> None:
            rng = random.Random(n)
            while not stop.is_set():
                try:
                    if rng.random() < 0.5:
                        response = session.get(server.resource_url, timeout=10)
                    else:
                        response = session.post(server.resource_url, data=b"x" * 512, timeout=10)
                    status = response.status_code
                    key = {200: "ok", 401: "401 surfaced"}.get(status, f"status {status}")
                except Exception as exc:  # counted, and shown below
                    key = f"exception {type(exc).__name__}"
                with lock:
                    counts[key] += 1
                    counts["requests"] += 1

        def revoker() -> None:
            rng = random.Random(0)
            while not stop.wait(rng.expovariate(1 / args.revoke_every)):
                server.revoke_all()
                counts["revocations"] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
        threads.append(threading.Thread(target=revoker))
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        token_requests = server.token_requests

    surfaced = counts["401 surfaced"]
    unexpected = sum(v for k, v in counts.items() if k.startswith(("exception", "status")))
    print(f"threads: {args.threads}, duration: {elapsed:.1f}s, token lifetime: {args.lifetime}s")
    print(f"requests made:            {counts['requests']}")
    print(f"revocations:              {counts['revocations']}")
    print(f"token requests:           {token_requests}")
    print(f"401s surfaced to callers: {surfaced}")
    print(f"unexpected exceptions:    {unexpected}")
    for key, value in sorted(counts.items()):
        if key.startswith(("exception", "status")):
            print(f"  {key}: {value}")
    return 0 if surfaced == 0 and unexpected == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
