"""One fetch in progress, shared by the threads that need its outcome (single flight).

:class:`Flight` holds the outcome, token or error; :class:`Refresher` is the thread of a
refresh ahead of expiry and its flight; :func:`fresh` copies an error for one more waiter
to raise, so that no caller's frames reach another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import requests

if TYPE_CHECKING:
    from .token import Token

__all__ = ["Flight", "Refresher", "fresh"]


class Flight:
    """One fetch in progress; followers wait on ``done`` and read its outcome."""

    __slots__ = ("done", "error", "started", "token")

    def __init__(self, started: float) -> None:
        self.started = started
        """When the fetch was found needed (the holder's clock)."""
        self.done = threading.Event()
        self.token: Token | None = None
        self.error: requests.RequestException | None = None


class Refresher(threading.Thread):
    """The thread of one refresh ahead of expiry, and its flight.

    It runs in a copy of the context of the thread that created it (the request that found
    the token due), as asyncio runs a callback, so that a tracing span current there
    (OpenTelemetry's context is a ``contextvars`` one) is the parent of the refresh's."""

    def __init__(self, target: Callable[[], None], flight: Flight) -> None:
        import contextvars  # not loaded by `import requests`: only when a refresh starts

        super().__init__(target=partial(contextvars.copy_context().run, target),
                         name="requests-oauthcc refresh", daemon=True)
        self.flight = flight


_E = TypeVar("_E", bound=BaseException)


def fresh(exc: _E) -> _E:
    """A copy of ``exc`` without a traceback, for one more caller to raise.

    Raising one exception object from several threads would pile each caller's frames (and
    exception context) onto it, so an error kept by one caller would show another's.
    ``__init__`` is not run again: the copy has the same ``args``, attributes and cause.
    """
    copied = type(exc).__new__(type(exc), *exc.args)
    copied.args = exc.args  # OSError's __new__ leaves them to an overridden __init__
    copied.__dict__.update(exc.__dict__)
    if isinstance(exc, OSError) and isinstance(copied, OSError):  # fields kept outside __dict__
        for name in ("errno", "strerror", "filename", "filename2"):
            if getattr(exc, name) is not None:  # set to None, they would show in str()
                setattr(copied, name, getattr(exc, name))
    copied.__cause__ = exc.__cause__
    copied.__suppress_context__ = exc.__suppress_context__
    return copied
