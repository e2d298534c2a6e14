"""Answering the API: what a response to a request that carried our token calls for.

Follows requests' own ``HTTPDigestAuth``: the response hook releases a 401 (reading at
most ``MAX_401_BODY_BYTES`` of it), copies the request, rewinds its body and resends it
through the same connection adapter, so hooks do not fire again and it cannot loop. With
DPoP (RFC 9449), it also keeps each response's nonce, answers a resource server's
``use_dpop_nonce`` once, and gives each redirect hop that keeps the token its own proof.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import requests
from requests.cookies import extract_cookies_to_jar

from ._destinations import Destinations
from ._redirects import next_hop
from ._replay import discard_body, rewind
from ._urls import target_uri
from .errors import InsecureTransportError
from .redaction import Redactor, server_text
from .reuse import MIN_REFRESH_INTERVAL, TokenHolder
from .token import Token

if TYPE_CHECKING:
    from ._observers import Observers
    from ._proofs import Proofs

__all__ = ["RETRY_REASONS", "Resender"]

RETRY_REASONS = ("invalid_token", "no_error_code", "other_error_code")
"""What a refusal's challenges say when a new token may help (RFC 6750 §3.1): the reasons
of :class:`~requests_oauthcc.events.RequestRetried`."""

logger = logging.getLogger(__name__)


class Resender:
    """The response hook of one auth object (:meth:`on_response`).

    ``holder`` gives new tokens; ``proofs`` signs DPoP proofs (``None`` without DPoP);
    ``refresh_on``: the statuses that mean "fetch a new token and retry once";
    ``destinations``: where the token may go (``allowed_origins``, the https rule), judged
    again for each redirect hop; ``clock``: the auth's monotonic clock; ``observers``: who
    hears of each retry and of each refusal returned unretried (:mod:`~requests_oauthcc.events`).
    """

    def __init__(
        self, holder: TokenHolder, proofs: Proofs | None, refresh_on: frozenset[int],
        destinations: Destinations, clock: Callable[[], float], *,
        observers: Observers | None = None,
    ) -> None:
        self._holder = holder
        self._observers = observers
        self._proofs = proofs
        self._destinations = destinations
        self._refresh_on = refresh_on
        self._clock = clock

    def on_response(
        self, token: Token | None, may_retry: bool, r: requests.Response, **kwargs: Any
    ) -> requests.Response:
        """Response hook of a request that carried ``token``.

        With a DPoP token, keeps the response's ``DPoP-Nonce`` and gives a redirect that
        keeps the token its own proof. When ``may_retry`` (no retry was made for this
        request yet), a 401 (or a ``refresh_on`` status) is answered by :meth:`_retry`.
        """
        if token is None:
            return r
        if token.dpop and self._proofs is not None:
            self._proofs.learn(r)
        if r.is_redirect:
            self._prepare_next_hop(token, r)
            return r
        status = r.status_code
        if status not in self._refresh_on:
            return r
        if not self._carries(r.request, token):
            where = target_uri(r.request.url or "")
            logger.debug("%d from %s to a request without our token: not retried", status,
                         where)
            return self._not_retried(r, where, token, "token_not_sent")
        if not may_retry:  # a redirect that answered the retry
            return self._not_retried(r, None, token, "already_retried")
        return self._retry(token, r, kwargs)

    def _may_attach(self, url: str) -> bool:
        try:
            return self._destinations.may_attach(url)
        except InsecureTransportError:  # the hop would carry it in the clear: it does not
            return False

    def _prepare_next_hop(self, token: Token, r: requests.Response,
                          request: requests.PreparedRequest | None = None) -> None:
        """requests follows redirect ``r`` with a copy of ``request`` (``r.request`` unless
        ``r`` answered a resend), headers included, without calling the auth: the copy
        keeps our token only where it may go (requests keeps ``Authorization`` from http to
        https on one host, whatever ``allowed_origins`` says), and carries a proof for
        exactly that hop, or none."""
        request = r.request if request is None else request
        if not self._carries(request, token):
            if self._proofs is not None:  # no proof where our DPoP token does not go
                request.headers.pop("DPoP", None)
            return
        hop = next_hop(r, r.request)
        if hop is not None and hop.keeps_authorization and not self._may_attach(hop.url):
            logger.debug("redirect from %s to %s: an origin the token may not go to; "
                         "followed without it", target_uri(request.url or ""),
                         target_uri(hop.url))
            request.headers.pop("Authorization", None)
            hop = None
        if self._proofs is not None:
            if token.dpop:
                self._proofs.prepare_next_hop(hop, request, token)
            else:  # a Bearer token (RFC 9449 §5) goes without proofs
                request.headers.pop("DPoP", None)

    @staticmethod
    def _carries(request: requests.PreparedRequest, token: Token) -> bool:
        return request.headers.get("Authorization") == token.authorization

    def _retry(
        self, token: Token, r: requests.Response, kwargs: dict[str, Any]
    ) -> requests.Response:
        """Send ``r.request`` again, as ``r`` asks: at most once with a new token (a 401,
        or a ``refresh_on`` status) and, with DPoP, at most once with the nonce the
        resource server gave (RFC 9449 §9), in either order; nothing else. A 401 refusing
        the DPoP proof (``invalid_dpop_proof``) costs no token: it is returned, the token kept.

        What the challenges say decides first (RFC 6750 §3.1): ``invalid_token`` or no
        error code: a new token; ``insufficient_scope`` or ``invalid_request``: a new token
        cannot help, the response is returned. When the retry with a brand-new token is
        refused with a 401 again, token requests forced by rejections pause
        (:class:`~requests_oauthcc.rejections.RejectionPause`).

        The resend goes through the same connection adapter, so hooks do not fire again
        and it cannot loop. A body that cannot be sent again is not: the response is
        returned (after a 401, the next call gets a new token).
        """
        request = r.request  # what requests sent, and what its redirects copy
        where = target_uri(request.url or "")  # for logs: no query, no user info
        nonce_retry, token_retry, replaced = token.dpop, True, False
        ours, proofs = self.on_response, self._proofs
        while True:
            status = r.status_code
            refused = proofs.proof_error(r) if proofs is not None and token.dpop else None
            if proofs is not None and refused is not None:  # the proof, not the token
                if not (refused == "use_dpop_nonce" and nonce_retry and proofs.gives_nonce(r)):
                    logger.debug("%d from %s: %s; not retried", status, where, refused)
                    return self._not_retried(r, where, token, refused)
                nonce_retry, new_token, why = False, token, refused
            elif status not in self._refresh_on:
                if replaced:
                    self._holder.rejections.accepted()
                return r
            else:
                why = self._challenge(r, where, token)
                if why not in RETRY_REASONS:
                    return self._not_retried(r, where, token, why)
                if not token_retry:
                    # A 401 to a token the server issued a moment ago: a new one is not the
                    # cure. (A 403 may forbid this resource alone: bounded by age, it pauses
                    # nothing.)
                    if replaced and status == 401:
                        self._holder.rejections.rejected_again(self._clock(), token, where,
                                                               status)
                    return self._not_retried(r, where, token, "already_retried")
                token_retry = False
                replacement = self._replacement(token, r, where)
                if replacement is None:
                    return r
                new_token, replaced = replacement, True
            if getattr(r, "connection", None) is None or not rewind(request):
                logger.debug("%d from %s: body cannot be sent again; %d returned", status,
                             where, status)
                return self._not_retried(r, where, token, "cannot_resend")
            # Redirects that answer the retry are followed by requests with a copy of this
            # request and its hooks: they must not retry again, even if the server gave the
            # same token value back (the hook knows its token by the header it sent).
            request.hooks["response"] = [
                partial(ours, new_token, False) if getattr(hook, "func", None) == ours
                else hook for hook in request.hooks["response"]]
            logger.debug("%d from %s: retrying once with %s", status, where,
                         "the DPoP nonce it gave" if new_token is token else "a new token")
            if self._observers:
                self._retried(r, where, token, why)
            r = self._resend(r, request, new_token, kwargs)
            token = new_token

    def _replacement(self, token: Token, r: requests.Response, where: str) -> Token | None:
        """The new token to send ``r.request`` again with, or ``None``: the response is then
        returned (a 403 to a token just received; a body that cannot be sent again, after
        which a new token is fetched for the next call; no new token to be had)."""
        status = r.status_code
        if status != 401 and not self._old_enough(token, r, where):
            self._not_retried(r, where, token, "token_too_recent")
            return None
        if getattr(r, "connection", None) is None or not rewind(r.request):
            self._not_retried(r, where, token, "cannot_resend")
            self._replace_quietly(token, r, where)
            return None
        try:
            new_token = self._holder.get(rejected=token)
        except BaseException:  # the caller gets the error, not ``r``: its connection goes back
            r.close()
            raise
        if new_token.authorization == token.authorization:
            paused = self._holder.rejections.remaining(self._clock())
            logger.debug("%d from %s: no new token (%s); %d returned", status, where,
                         f"token requests after rejections paused for {paused:.1f}s"
                         if paused else "the token endpoint gave the same one", status)
            self._not_retried(r, where, token, "rejections_paused" if paused else "same_token")
            return None
        return new_token

    def _not_retried(self, r: requests.Response, where: str | None, token: Token,
                     reason: str) -> requests.Response:
        """``r``, returned unretried for ``reason`` (told to the observers)."""
        if self._observers:
            from .events import RequestNotRetried, short_fingerprint

            self._observers.emit(RequestNotRetried(
                status_code=r.status_code, reason=reason,
                url=target_uri(r.request.url or "") if where is None else where,
                token=short_fingerprint(token.access_token)))
        return r

    def _retried(self, r: requests.Response, where: str, token: Token, reason: str) -> None:
        """Tell the observers that ``r`` is answered by sending its request again."""
        assert self._observers is not None
        from .events import DPoPNonceRetried, RequestRetried, short_fingerprint

        if reason == "use_dpop_nonce":
            self._observers.emit(DPoPNonceRetried(server="resource", url=where))
        else:
            self._observers.emit(RequestRetried(
                status_code=r.status_code, reason=reason, url=where,
                token=short_fingerprint(token.access_token)))

    def _replace_quietly(self, token: Token, r: requests.Response, where: str) -> None:
        """After a rejection whose request cannot be sent again: a new token for the next
        call (bounded like any other rejection), errors logged, not raised."""
        logger.debug("%d from %s: body cannot be sent again; token replaced, %d returned",
                     r.status_code, where, r.status_code)
        try:
            self._holder.get(rejected=token)
        except requests.RequestException as exc:
            logger.debug("no new token after the %d from %s: %s", r.status_code, where,
                         type(exc).__name__)

    def _resend(
        self, r: requests.Response, request: requests.PreparedRequest, token: Token,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """``request`` sent again with ``token`` (and a new proof), as requests'
        ``HTTPDigestAuth`` does: the answer ``r`` released, cookies it set carried."""
        discard_body(r)
        prep = request.copy()
        extract_cookies_to_jar(prep._cookies, request, r.raw)  # type: ignore[attr-defined,no-untyped-call]
        prep.prepare_cookies(prep._cookies)  # type: ignore[attr-defined]
        prep.headers["Authorization"] = token.authorization
        if token.dpop and self._proofs is not None:
            prep.headers["DPoP"] = self._proofs.for_request(prep.method or "GET",
                                                            prep.url or "", token)
        else:  # a Bearer token (RFC 9449 §5) goes without the rejected token's proof
            prep.headers.pop("DPoP", None)
            request.headers.pop("DPoP", None)
        # A redirect answering the retry is followed by requests with a copy of the
        # original request: it must carry the new token, not the rejected one.
        request.headers["Authorization"] = token.authorization
        retried: requests.Response = r.connection.send(prep, **kwargs)
        retried.history.append(r)
        retried.request = prep
        if token.dpop and self._proofs is not None:
            self._proofs.learn(retried)
        if retried.is_redirect:  # requests follows it with a copy of the original request
            self._prepare_next_hop(token, retried, request)
        return retried

    @staticmethod
    def _challenge(r: requests.Response, where: str, token: Token) -> str:
        """What the challenges of ``r`` say (RFC 6750 §3.1), for whether a new token could
        change the answer: it may for ``invalid_token``, ``no_error_code`` (a bare
        ``Bearer`` challenge, none at all) or ``other_error_code``; not for
        ``insufficient_scope`` (the token is good, its scope is not: logged with the scope
        asked for) or ``invalid_request``, unless a challenge says ``invalid_token`` too.
        The scope is logged as server text with ``token`` (which the API may echo)
        redacted."""
        header = r.headers.get("WWW-Authenticate")
        if not header:
            return "no_error_code"
        from .challenge import read_challenges  # parsed only when a token is refused

        errors, scope = read_challenges(header)
        if "invalid_token" in errors:
            return "invalid_token"
        if "insufficient_scope" in errors:
            logger.debug("%d from %s: insufficient_scope (the API asks for scope %s); a "
                         "new token of the same scope cannot help, not retried",
                         r.status_code, where,
                         "(not said)" if scope is None else
                         server_text(scope, Redactor([token.access_token]), limit=200))
            return "insufficient_scope"
        if "invalid_request" in errors:
            logger.debug("%d from %s: invalid_request; the request, not the token, is at "
                         "fault: not retried", r.status_code, where)
            return "invalid_request"
        return "other_error_code" if errors else "no_error_code"

    def _old_enough(self, token: Token, r: requests.Response, where: str) -> bool:
        """Whether a ``refresh_on`` status other than 401 may cost a new token: not for a
        token received less than :data:`~requests_oauthcc.reuse.MIN_REFRESH_INTERVAL`
        ago: a 403 is as often a plain "forbidden" as a rejected token, and it must not
        turn every call into a token request."""
        received = self._holder.received_at(token)
        age = math.inf if received is None else self._clock() - received
        if age < MIN_REFRESH_INTERVAL:
            logger.debug("%d from %s to a token received %.1fs ago: not retried",
                         r.status_code, where, age)
            return False
        return True
