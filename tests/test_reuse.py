"""TokenHolder: reuse, single flight, shared errors, stale fallback, fork safety."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from requests_oauthcc import ClientCredentialsAuth, Token, TokenEndpointError
from requests_oauthcc.reuse import TokenHolder
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, in_threads, settle


class Fetcher:
    """A token source that counts calls, can be slowed, and can be told to fail."""

    def __init__(self, clock: FakeClock, lifetime: float | None = 100.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.delay = 0.0
        self.error: Exception | None = None
        self.refresh_in: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Token:
        with self._lock:
            self.calls += 1
            n = self.calls
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        now = self.clock()
        expires = None if self.lifetime is None else now + self.lifetime
        return Token(f"token-{n}", issued_at=now, expires_at=expires, refresh_in=self.refresh_in)


def holder_for(fetch: Fetcher, leeway: float = 10.0) -> TokenHolder:
    return TokenHolder(fetch, leeway=leeway, clock=fetch.clock)


def held(holder: TokenHolder) -> Token | None:
    """The held token, read through a call so type narrowing does not stick."""
    return holder.token


def test_reuses_until_refresh_time(clock: FakeClock) -> None:
    """A held token is returned until leeway before expiry, then replaced."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    first = holder.get()
    clock.advance(89.9)
    assert holder.get() is first and fetch.calls == 1
    clock.advance(0.2)
    assert holder.get() is first, "refreshed ahead: the valid token is used meanwhile"
    settle(holder)
    assert held(holder) is not first and fetch.calls == 2
    assert holder.get() is held(holder)


def test_concurrent_cold_callers_share_one_fetch(clock: FakeClock) -> None:
    """32 threads finding no token wait for a single fetch and all get its token."""
    fetch = Fetcher(clock)
    fetch.delay = 0.2
    holder = holder_for(fetch)
    results = in_threads(32, holder.get)
    assert fetch.calls == 1
    assert len({id(r) for r in results}) == 1 and isinstance(results[0], Token)


def test_waiters_get_the_same_error_instead_of_stampeding(clock: FakeClock) -> None:
    """When the single fetch fails, every waiting thread gets that error (its own copy,
    same type, message, attributes and cause); one request made."""
    fetch = Fetcher(clock)
    fetch.delay = 0.2
    fetch.error = TokenEndpointError("down", token_url="https://as/token", status_code=503)
    holder = holder_for(fetch)
    results = in_threads(16, holder.get)
    assert fetch.calls == 1
    assert all(type(r) is TokenEndpointError and str(r) == "down" for r in results)
    assert all(r.status_code == 503 and r.token_url == "https://as/token"  # type: ignore[attr-defined]
               for r in results)
    assert sum(r is fetch.error for r in results) == 1  # the leader's; the others, copies


def test_failed_early_refresh_keeps_using_the_valid_token(clock: FakeClock) -> None:
    """Inside the leeway window a failed refresh falls back to the still-valid token."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    first = holder.get()
    clock.advance(95)  # past refresh time (90), before expiry (100)
    fetch.error = TokenEndpointError("down", token_url="https://as/token", status_code=503)
    assert holder.get() is first
    settle(holder)
    calls = fetch.calls
    assert holder.get() is first and fetch.calls == calls, "cooldown: no retry at once"
    clock.advance(5)  # now expired
    with pytest.raises(TokenEndpointError):
        holder.get()


def test_refresh_ahead_makes_no_caller_wait(clock: FakeClock) -> None:
    """A token due for refresh but valid is refreshed by one background thread: no caller
    waits for the 1 s fetch, the one that noticed included, and one fetch is made."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    first = holder.get()
    clock.advance(95)  # past refresh time (90), before expiry (100)
    fetch.delay = 1.0
    waited: list[float] = []

    def call() -> Token:
        started = time.monotonic()
        token = holder.get()
        waited.append(time.monotonic() - started)
        return token

    results = in_threads(16, call)
    assert all(r is first for r in results)
    assert max(waited) < 0.5, "a caller waited for the 1 s refresh"
    settle(holder)
    assert fetch.calls == 2 and held(holder) is not first


def test_no_refresh_thread_outlives_its_fetch_and_close_waits_for_it(clock: FakeClock) -> None:
    """The refresh thread exists only while it fetches; close() waits for it, and after
    close() a due refresh happens on the caller's thread (no new thread)."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    first = holder.get()

    def refreshers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "requests-oauthcc refresh"]

    assert refreshers() == []
    clock.advance(95)
    fetch.delay = 0.5
    assert holder.get() is first
    assert len(refreshers()) == 1
    holder.close()
    assert refreshers() == [] and fetch.calls == 2
    second = held(holder)
    assert second is not None and second is not first
    clock.advance(95)
    fetch.delay = 0.0
    assert holder.get() is not second, "after close(), refreshed on the caller's thread"
    assert refreshers() == [] and fetch.calls == 3


def test_a_refresh_in_hint_moves_the_refresh_earlier(clock: FakeClock) -> None:
    """A server's refresh_in (Microsoft Entra ID) brings the refresh forward: a 100 s token
    with refresh_in 50 is refreshed after 50 s, not 90 s."""
    fetch = Fetcher(clock)
    fetch.refresh_in = 50.0
    holder = holder_for(fetch)
    first = holder.get()
    clock.advance(49.9)
    holder.get()
    assert fetch.calls == 1
    clock.advance(0.2)
    holder.get()
    settle(holder)
    assert fetch.calls == 2 and held(holder) is not first


def test_rejected_token_is_never_returned(clock: FakeClock) -> None:
    """get(rejected=t) fetches even though t is fresh."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    first = holder.get()
    assert holder.get(rejected=first) is not first
    assert fetch.calls == 2


def test_rejection_of_an_already_replaced_token_reuses_the_new_one(clock: FakeClock) -> None:
    """If another thread already replaced the rejected token, no new fetch happens."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    first = holder.get()
    second = holder.get(rejected=first)
    assert holder.get(rejected=first) is second
    assert fetch.calls == 2


def test_many_threads_rejecting_the_same_token_fetch_once(clock: FakeClock) -> None:
    """A revocation seen by 32 threads at once costs exactly one new token."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    first = holder.get()
    fetch.delay = 0.1
    results = in_threads(32, lambda: holder.get(rejected=first))
    assert fetch.calls == 2
    assert all(isinstance(r, Token) and r is not first for r in results)


def test_invalidate_compares_before_dropping(clock: FakeClock) -> None:
    """invalidate(rejected) drops the held token only if it is still the rejected one."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    first = holder.get()
    second = holder.get(rejected=first)
    holder.invalidate(first)
    assert held(holder) is second
    holder.invalidate(second)
    assert held(holder) is None
    holder.get()
    holder.invalidate()
    assert held(holder) is None


def test_token_without_expiry_is_kept(clock: FakeClock) -> None:
    """No expires_in: the token is used however much time passes."""
    fetch = Fetcher(clock, lifetime=None)
    holder = holder_for(fetch)
    first = holder.get()
    clock.advance(10**9)
    assert holder.get() is first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_while_another_thread_holds_the_lock(clock: FakeClock) -> None:
    """A child forked while a parent thread holds the lock gets fresh locks, no deadlock."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    first = holder.get()
    taken, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with holder._lock:
            taken.set()
            release.wait(5)

    t = threading.Thread(target=hold_lock)
    t.start()
    taken.wait(5)
    pid = os.fork()
    if pid == 0:  # child: must not hang on the inherited, held lock
        try:
            ok = holder.get() is first and holder.get(rejected=first) is not first
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    release.set()
    t.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child deadlocked on the inherited lock")


class Alarm(Exception):
    """Raised by a signal handler: not a failure of the fetch it interrupts."""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_a_signal_handlers_exception_is_not_handed_to_waiting_threads(
    server: OAuthTestServer,
) -> None:
    """The main thread leads a slow fetch; a SIGALRM handler raises in it. That exception
    is the main thread's alone: the waiting threads try again and get a token.
    (0.2.0 handed the handler's exception to every waiting thread.)"""
    server.queue_response(200, {"access_token": "late", "token_type": "Bearer"}, delay=3.0)
    auth = ClientCredentialsAuth(server.token_url, CLIENT_ID, CLIENT_SECRET, retries=0,
                                 timeout=10)
    results: list[object] = []

    def wait_on_the_fetch() -> None:
        time.sleep(0.3)  # the main thread leads by then
        try:
            results.append(auth.fetch_token())
        except Exception as exc:
            results.append(exc)

    def raise_alarm(signum: int, frame: object) -> None:
        raise Alarm("the handler's own business")

    previous = signal.signal(signal.SIGALRM, raise_alarm)
    waiters = [threading.Thread(target=wait_on_the_fetch) for _ in range(8)]
    try:
        for waiter in waiters:
            waiter.start()
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(Alarm):
            auth.fetch_token()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        for waiter in waiters:
            waiter.join(15)
    assert len(results) == 8
    assert all(isinstance(r, Token) and r.access_token != "late" for r in results), results
    assert server.token_requests == 2


def test_only_request_errors_are_shared(clock: FakeClock) -> None:
    """An exception that is not an OAuthError or a requests error (here a RuntimeError
    raised by the leader's fetch) stays in the leading thread; the waiters fetch again."""
    fetch = Fetcher(clock)
    fetch.delay = 0.3
    first = threading.Event()

    def fetch_or_fail() -> Token:
        if not first.is_set():
            first.set()
            time.sleep(0.3)
            raise RuntimeError("not a fetch failure")
        return fetch()

    holder = TokenHolder(fetch_or_fail, leeway=10.0, clock=clock)
    results = in_threads(8, holder.get)
    assert sum(isinstance(r, RuntimeError) for r in results) == 1
    assert sum(isinstance(r, Token) for r in results) == 7
    assert fetch.calls == 1


# -- a bounded number of token requests, however the server answers (issue #11) -----------


class SameToken:
    """A gateway's token source: one token, ``expires_in`` counting down (rounded down)."""

    def __init__(self, clock: FakeClock, expiry: float) -> None:
        self.clock, self.expiry, self.calls = clock, expiry, 0

    def __call__(self) -> Token:
        self.calls += 1
        now = self.clock()
        left = float(int(self.expiry - now))  # 0 in the last second: "no lifetime"
        return Token("the-one", issued_at=now, expires_at=now + left if left > 0 else None)


def test_same_token_answer_keeps_the_later_expiry_and_is_not_asked_again(
    clock: FakeClock,
) -> None:
    """A refresh answered with the token held never shortens its use (an expires_in rounded
    down, or 0, counts for nothing), and no token request follows before it expires."""
    fetch = SameToken(clock, expiry=clock() + 60)
    holder = TokenHolder(fetch, leeway=10, clock=clock)
    first = holder.get()
    assert first.expires_at == clock() + 60
    clock.advance(54.5)  # refresh time: the gateway answers the same token, "5" left
    holder.get()
    settle(holder)
    second = holder.get()
    assert fetch.calls == 2 and second.expires_at == first.expires_at
    for _ in range(54):
        clock.advance(0.1)  # up to its expiry: no request, whatever the lifetime says
        assert holder.get().access_token == "the-one"
    assert fetch.calls == 2
    clock.advance(0.2)  # expired: the next token request
    holder.get()
    assert fetch.calls == 3


def test_a_token_expired_on_arrival_is_used_for_a_second(clock: FakeClock) -> None:
    """A lifetime shorter than the round trip (or rounded to nothing) does not turn every
    request into a token request: the new token is used for MIN_REFRESH_INTERVAL first."""
    from requests_oauthcc.reuse import MIN_REFRESH_INTERVAL

    fetch = Fetcher(clock, lifetime=0.001)
    holder = holder_for(fetch)
    holder.get()
    clock.advance(0.5)
    for _ in range(100):
        holder.get()
    assert fetch.calls == 1
    clock.advance(MIN_REFRESH_INTERVAL)
    holder.get()
    assert fetch.calls == 2


def test_a_rejected_token_is_replaced_at_once_whatever_its_age(clock: FakeClock) -> None:
    """The one-second floor never delays the replacement of a token the API refused."""
    fetch = Fetcher(clock, lifetime=0.001)
    holder = holder_for(fetch)
    first = holder.get()
    second = holder.get(rejected=first)
    assert second is not first and fetch.calls == 2


def test_a_rejected_value_is_never_handed_back_as_another_token(clock: FakeClock) -> None:
    """A gateway's same-value refresh makes a new Token object: a 401 on a request that
    carried the older object still leads to a new fetch, not to the same dead value
    (found by an outside review: 401s reached callers without a retry)."""
    fetch = SameToken(clock, expiry=clock() + 60)
    holder = TokenHolder(fetch, leeway=10, clock=clock)
    first = holder.get()
    clock.advance(54.5)
    holder.get()
    settle(holder)
    second = holder.get()
    assert second is not first and second.access_token == first.access_token
    fetch.expiry = clock() + 60  # the gateway's token expired early: it issues a new one
    fetch_before = fetch.calls
    holder.get(rejected=first)
    assert fetch.calls == fetch_before + 1


def test_a_failed_explicit_fetch_keeps_the_held_token(clock: FakeClock) -> None:
    """fetch_token() (a health check, say) failing during an outage does not throw away a
    valid token: the next calls keep using it (found by an outside review)."""
    fetch = Fetcher(clock)
    holder = holder_for(fetch)
    held_token = holder.get()
    fetch.error = TokenEndpointError("down", token_url="https://as/token", status_code=503)
    with pytest.raises(TokenEndpointError):
        holder.get(rejected=held_token, force=True)
    assert holder.get() is held_token
    assert fetch.calls == 2


def test_copies_of_a_failure_keep_oserror_fields_and_nothing_added_later() -> None:
    """An error handed to more callers keeps errno and strerror, and what one caller adds
    to its exception (an attribute, frames) never reaches the copies others get."""
    import requests

    from requests_oauthcc._flights import fresh as _fresh

    original = requests.ConnectionError(111, "vault connection refused")
    copy = _fresh(original)
    assert (copy.errno, copy.strerror, str(copy)) == (111, "vault connection refused",
                                                     str(original))
    original.caller = "A"  # type: ignore[attr-defined]
    assert not hasattr(copy, "caller") and not hasattr(_fresh(copy), "caller")


def test_a_slow_fetch_moves_the_next_refresh_ahead_earlier(clock: FakeClock) -> None:
    """A 2 s token whose fetch took 0.3 s (a slow endpoint, threads starving the refresh of
    the GIL) is refreshed 0.6 s before expiry, not at the usual 90% (0.2 s before), so the
    new token arrives while the held one is valid; never before half its life, and a
    slow fetch never makes a refresh later than usual."""
    fetch = Fetcher(clock)
    took = [0.3]

    def slow() -> Token:
        token = fetch()
        clock.advance(took[0])  # the answer took this long (issued_at was read before)
        return token

    def margin(lifetime: float, seconds: float) -> float:
        fetch.lifetime, took[0] = lifetime, seconds
        holder = TokenHolder(slow, leeway=30, clock=clock)
        token = holder.get()
        assert token.expires_at is not None and holder.current is not None
        return token.expires_at - holder.current[1]

    assert margin(2.0, 0.3) == pytest.approx(0.6)
    assert margin(2.0, 0.05) == pytest.approx(0.2)  # the usual 10%
    assert margin(10.0, 0.3) == pytest.approx(1.0)  # the usual 10%, earlier already
    assert margin(8.0, 3.0) == pytest.approx(4.0)  # half its life, not 6 s before expiry
