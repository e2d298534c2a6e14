"""One auth object's DPoP proofs (RFC 9449): its key, and the nonces servers gave it.

:class:`Proofs` signs a fresh proof for each request that carries a DPoP-bound token and
for each token request, with the nonce last received from that origin (§8, §9): every
response's ``DPoP-Nonce`` header replaces it, so the steady state costs no extra round
trip. A redirect hop that keeps the token gets its own proof
(:meth:`Proofs.prepare_next_hop`).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING

import requests

from ._urls import origin, prepared_origin
from .challenge import challenge_errors
from .errors import DiscoveryError
from .redaction import SensitiveText, server_text

if TYPE_CHECKING:
    from ._redirects import Hop
    from .dpop import DPoPKey
    from .token import Token

__all__ = ["Proofs"]

logger = logging.getLogger(__name__)

_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,1024}")
"""``nonce = 1*NQCHAR`` (RFC 9449 §8.1), at most 1 KiB: anything else is not kept."""
_MAX_ORIGINS = 64
"""Nonces kept (one per origin); when full, the oldest are forgotten."""


def _nonce_key(url: str, token_endpoint: bool) -> str:
    """Where the nonce of ``url``'s origin is kept: apart for its token endpoint, whose URL
    (as configured, or as requests prepared it) is normalized in full (default port)."""
    return "token endpoint " + origin(url) if token_endpoint else prepared_origin(url)


class Proofs:
    """The DPoP proofs of one auth object.

    ``key``: the :class:`~requests_oauthcc.dpop.DPoPKey`; discovery may switch it to an
    algorithm the server lists (:meth:`choose_alg`). Thread-safe: the nonce table is
    read without a lock and written under one.
    """

    def __init__(self, key: DPoPKey) -> None:
        self.key = key
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<DPoP proofs: {self.key!r}>"

    def nonce(self, url: str, *, token_endpoint: bool = False) -> str | None:
        """The nonce last received from ``url``'s origin (from its token endpoint, or from
        its resources), if any."""
        return self._nonces.get(_nonce_key(url, token_endpoint))

    def for_token_request(self, token_url: str) -> SensitiveText:
        """A proof for a token request (``POST`` to ``token_url``, no ``ath``)."""
        return self.key.proof("POST", token_url,
                              nonce=self.nonce(token_url, token_endpoint=True))

    def for_request(self, method: str, url: str, token: Token) -> SensitiveText:
        """A proof for a resource request carrying ``token`` (with its ``ath``)."""
        return self.key.proof(method, url, access_token=token.access_token,
                              nonce=self.nonce(url))

    def learn(self, response: requests.Response, *, token_endpoint: bool = False) -> bool:
        """Keep the ``DPoP-Nonce`` of ``response`` for its request's origin.

        Returns whether it is a new nonce. A value that is not ``1*NQCHAR`` (RFC 9449 §8.1)
        or longer than 1 KiB is ignored. The nonces of a token endpoint (§8) and of
        resources (§9) are kept apart, even on one origin: they are different servers'.
        """
        if not self.gives_nonce(response):
            return False
        nonce = response.headers["DPoP-Nonce"]
        origin = _nonce_key(response.request.url or "", token_endpoint)
        if self._nonces.get(origin) == nonce:
            return False
        with self._lock:  # a new nonce is rare; evicting must not race another thread
            if len(self._nonces) >= _MAX_ORIGINS and origin not in self._nonces:
                del self._nonces[next(iter(self._nonces))]
            self._nonces[origin] = nonce
        return True

    @staticmethod
    def proof_error(response: requests.Response) -> str | None:
        """What a resource server's 401 says against the proof, not the token (RFC 9449
        §7.1, §9): ``use_dpop_nonce`` (send it again with the nonce given),
        ``invalid_dpop_proof`` (a new token, bound to the same key, cannot help), or
        ``None``."""
        if response.status_code != 401:
            return None
        errors = challenge_errors(response.headers.get("WWW-Authenticate", ""))
        return next((e for e in ("use_dpop_nonce", "invalid_dpop_proof") if e in errors), None)

    @staticmethod
    def gives_nonce(response: requests.Response) -> bool:
        """Whether ``response`` carries a usable ``DPoP-Nonce``."""
        return _NONCE.fullmatch(response.headers.get("DPoP-Nonce", "")) is not None

    def prepare_next_hop(self, hop: Hop | None, request: requests.PreparedRequest,
                         token: Token) -> None:
        """Give the redirect ``hop`` its own proof: requests follows it with a copy of
        ``request`` (the request it sent, not run through the auth again), so the copy's
        ``DPoP`` header is set here to a proof for the hop's method and URL, or removed
        when the hop will not carry the token (:func:`~requests_oauthcc._redirects.next_hop`).
        """
        if hop is None or not hop.keeps_authorization:
            request.headers.pop("DPoP", None)
        else:
            request.headers["DPoP"] = self.for_request(hop.method, hop.url, token)

    def choose_alg(self, supported: object, issuer: str) -> None:
        """Sign with an algorithm the server lists in ``dpop_signing_alg_values_supported``
        (RFC 9449 §5.1): the key's own if listed, else the first the key can use.

        Nothing changes when the server lists nothing. Raises :class:`DiscoveryError` when
        the key can sign none of the listed algorithms.
        """
        if supported is None:
            return
        if not isinstance(supported, list) or not all(isinstance(a, str) for a in supported):
            raise DiscoveryError(
                "dpop_signing_alg_values_supported is not a list of strings", issuer=issuer)
        key = self.key
        usable = [alg for alg in (key.alg, *key.algs) if alg in supported]
        if not usable:
            listed = server_text(", ".join(supported), limit=200) or "none"
            raise DiscoveryError(
                f"{issuer} accepts DPoP proofs signed with: {listed}; this DPoP key "
                f"({key.alg}) can sign only {', '.join(key.algs)}: give dpop= a key for one "
                "of the listed algorithms (DPoPKey.generate(alg))",
                issuer=issuer,
            )
        if usable[0] != key.alg:
            logger.info("DPoP proofs for %s signed with %s (the server does not list %s)",
                        issuer, usable[0], key.alg)
            self.key = key.with_alg(usable[0])
