"""A DPoP proof checker (RFC 9449), written from the RFC for the local test server.

:class:`DPoPProofChecker` checks one request's ``DPoP`` header by every rule of RFC 9449
§4.3 (and the access-token rules of §7.1), hands out server nonces (§8, §9) and keeps the
replay cache of §11.1. It stands alone, so your own test servers can use it too::

    checker = DPoPProofChecker(require_nonce=True)
    try:
        proof = checker.check(request.headers.get_all("DPoP"), method="POST", url=token_url)
    except DPoPError as error:
        ...  # 400 {"error": error.error, "error_description": error.description}

Whatever a peer sends, :meth:`DPoPProofChecker.check` returns a :class:`CheckedProof` or
raises :class:`DPoPError`, never another exception, and no error description repeats the
proof or the access token. PyJWT and cryptography (the ``[jwt]`` extra) are imported only
when a proof's signature is checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_ALGS",
    "CheckedProof",
    "DPoPError",
    "DPoPProofChecker",
    "access_token_hash",
    "jwk_thumbprint",
]

DEFAULT_ALGS: tuple[str, ...] = (
    "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
)
"""The asymmetric JWS algorithms accepted unless told otherwise (never ``none`` or HS*)."""

_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
_ASYMMETRIC = frozenset(DEFAULT_ALGS)
_REQUIRED_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                     "OKP": ("crv", "kty", "x")}
_KEY_MEMBERS = {"EC": ("x", "y"), "RSA": ("n", "e"), "OKP": ("x",)}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_MAX_PROOF_LENGTH = 8192  # an RSA-8192 proof fits; anything longer is refused unparsed
_MAX_JTI_LENGTH = 512
_RSA_BYTES = (256, 1024)  # 2048 to 8192-bit moduli
_REPLAY_CACHE_LIMIT = 100_000
_NONCE_LIFETIME = 300.0  # seconds a nonce stays the current one
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class DPoPError(Exception):
    """A refused DPoP proof.

    ``error``: ``"invalid_dpop_proof"`` (the proof breaks a rule of RFC 9449 §4.3) or
    ``"use_dpop_nonce"`` (a server nonce is needed, §8/§9; answer with a ``DPoP-Nonce``).
    ``description``: why, for ``error_description``; never holds the proof or a token.
    """

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class CheckedProof:
    """What one valid DPoP proof said (RFC 9449 §4.2).

    ``thumbprint``: RFC 7638 SHA-256 thumbprint of the header's ``jwk`` (base64url, no
    padding), the ``jkt`` a token gets bound to (§6.1). ``iat``: seconds since the epoch.
    ``nonce`` and ``ath`` are ``None`` when the proof had none.
    """

    thumbprint: str
    jti: str
    iat: int
    htm: str
    htu: str
    nonce: str | None
    ath: str | None
    header: Mapping[str, Any] = field(repr=False)
    claims: Mapping[str, Any] = field(repr=False)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding.

    Only the required members of the key type (EC: crv kty x y; RSA: e kty n; OKP: crv kty x;
    oct: k kty) in lexicographic order, no whitespace. Raises :class:`ValueError` for another
    key type or a missing or non-string member.
    """
    kty = jwk.get("kty")
    names = _REQUIRED_MEMBERS.get(kty) if isinstance(kty, str) else None
    if kty == "oct":
        names = ("k", "kty")
    if names is None:
        raise ValueError("unsupported JWK key type")
    members = {name: jwk.get(name) for name in names}
    if not all(isinstance(value, str) for value in members.values()):
        raise ValueError("a required JWK member is missing or not a string")
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return _b64url(hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest())


def access_token_hash(access_token: str) -> str:
    """The ``ath`` of RFC 9449 §4.2: base64url(SHA-256(ASCII(token))), no padding.

    (A token with characters outside ASCII, which RFC 6750 does not allow, is hashed as
    UTF-8 rather than refused.)
    """
    return _b64url(hashlib.sha256(access_token.encode("utf-8", "surrogatepass")).digest())


def _invalid(description: str) -> DPoPError:
    return DPoPError("invalid_dpop_proof", description)


def _b64decode(part: str, what: str) -> bytes:
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise _invalid(f"the {what} is not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _json_object(part: str, what: str) -> dict[str, Any]:
    raw = _b64decode(part, what)
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                           parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _invalid(f"the {what} is not a JSON object") from exc
    if not isinstance(value, dict):
        raise _invalid(f"the {what} is not a JSON object")
    return value


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for the path of an absolute URL."""
    segments = path.split("/")
    output: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if len(output) > 1:
                output.pop()
        elif segment != ".":
            output.append(segment)
            continue
        if last:
            output.append("")
    return "/".join(output)


def _normalize_percent(text: str) -> str:
    """RFC 3986 §6.2.2.1 and §6.2.2.2: upper-case escapes, unreserved ones decoded."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return re.sub(r"%([0-9A-Fa-f]{2})", fix, text)


def normalize_htu(url: str) -> str:
    """A URL as RFC 9449 §4.3 compares ``htu``: query and fragment dropped, then RFC 3986
    syntax-based (§6.2.2) and scheme-based (§6.2.3) normalization. Raises ValueError for
    what is not an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or parts.hostname is None:
        raise ValueError("not an absolute http(s) URL")
    host = _normalize_percent(parts.hostname).lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError when out of range
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{_normalize_percent(userinfo)}@{netloc}"
    path = _remove_dot_segments(_normalize_percent(parts.path)) or "/"
    return f"{scheme}://{netloc}{path}"


class DPoPProofChecker:
    """Checks DPoP proofs for one server (an authorization server or a resource server).

    ``require_nonce``: proofs must carry a nonce this checker handed out (RFC 9449 §8/§9);
    a missing, unknown or expired one raises ``DPoPError("use_dpop_nonce", ...)``.
    ``algs``: the JWS algorithms accepted, asymmetric only (:data:`DEFAULT_ALGS`);
    ``ValueError`` for ``none``, HS* or any other. ``max_age``: seconds ``iat`` may be from
    the ``clock`` (seconds since the epoch), in both directions; a ``jti`` is remembered
    for as long as its proof could be accepted (§11.1).

    Nonces: :meth:`nonce` is the current one; it is replaced every 300 seconds or by
    :meth:`rotate_nonce`, and the one before it is still accepted until the next
    rotation. A present nonce is always checked, also when nonces are not required.
    Thread-safe: one checker serves every request thread.
    """

    def __init__(
        self,
        *,
        require_nonce: bool = False,
        algs: Iterable[str] = DEFAULT_ALGS,
        max_age: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.algs = tuple(algs)
        refused = [alg for alg in self.algs if alg not in _ASYMMETRIC]
        if refused or not self.algs:
            raise ValueError(f"DPoP algorithms must be among {', '.join(DEFAULT_ALGS)}")
        if not max_age > 0:
            raise ValueError("max_age must be a positive number of seconds")
        self.require_nonce = require_nonce
        self.max_age = float(max_age)
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._seen_order: deque[tuple[float, str]] = deque()
        self._current = secrets.token_urlsafe(24)
        self._current_since = clock()
        self._previous: str | None = None

    def __repr__(self) -> str:
        return (f"DPoPProofChecker(require_nonce={self.require_nonce}, algs={self.algs}, "
                f"max_age={self.max_age})")

    # -- nonces (RFC 9449 §8, §9) -------------------------------------------------------

    def nonce(self) -> str:
        """The nonce to hand out now (``DPoP-Nonce``); unpredictable, rotated every 300 s."""
        with self._lock:
            if self._clock() - self._current_since >= _NONCE_LIFETIME:
                self._rotate_locked()
            return self._current

    def rotate_nonce(self) -> str:
        """Make a new current nonce now and return it; the old one is still accepted until
        the next rotation."""
        with self._lock:
            return self._rotate_locked()

    def _rotate_locked(self) -> str:
        self._previous, self._current = self._current, secrets.token_urlsafe(24)
        self._current_since = self._clock()
        return self._current

    def _known_nonce(self, nonce: str) -> bool:
        given = nonce.encode("utf-8", "surrogatepass")
        current = self.nonce().encode()
        with self._lock:
            previous = (self._previous or "").encode()
        return secrets.compare_digest(given, current) or (
            bool(previous) and secrets.compare_digest(given, previous))

    # -- checking (RFC 9449 §4.3, §7.1) ---------------------------------------------------

    def check(
        self,
        proofs: str | Sequence[str] | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        bound_thumbprint: str | None = None,
    ) -> CheckedProof:
        """Check the ``DPoP`` header values of one request; the proof, or :class:`DPoPError`.

        ``proofs``: the header's values (a string, the list of every ``DPoP`` header, or
        ``None``); exactly one is needed. ``method`` and ``url`` are the request's, as it
        was addressed (query and fragment are ignored). ``access_token``: the token the
        request presents, whose hash ``ath`` must carry. ``bound_thumbprint``: the ``jkt``
        that token is bound to, which the proof's key must have. The ``jti`` is recorded
        only when every rule passed.
        """
        header, claims, signing_input, signature = self._parse(self._one_proof(proofs))
        alg, jwk = self._check_header(header)
        thumbprint = self._check_jwk(jwk, alg)
        _verify_signature(alg, jwk, signing_input, signature)
        jti, htm, htu, iat = self._check_claims(claims, method, url)
        ath = claims.get("ath")
        if ath is not None and not isinstance(ath, str):
            raise _invalid("ath must be a string")
        if access_token is not None:
            if ath is None:
                raise _invalid("ath is required with an access token")
            if not secrets.compare_digest(ath.encode("utf-8", "surrogatepass"),
                                          access_token_hash(access_token).encode()):
                raise _invalid("ath does not match the access token")
        if bound_thumbprint is not None and not secrets.compare_digest(
                thumbprint.encode(), bound_thumbprint.encode("utf-8", "surrogatepass")):
            raise _invalid("the proof's key is not the key the access token is bound to")
        nonce = self._check_nonce(claims.get("nonce"))
        self._remember(jti, iat + self.max_age)
        return CheckedProof(
            thumbprint=thumbprint, jti=jti, iat=int(iat), htm=htm, htu=htu, nonce=nonce,
            ath=ath, header=MappingProxyType(header), claims=MappingProxyType(claims),
        )

    def _check_header(self, header: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        alg = header.get("alg")
        if header.get("typ") != "dpop+jwt":
            raise _invalid('typ must be "dpop+jwt"')
        if not isinstance(alg, str) or alg not in self.algs:
            raise _invalid(f"alg must be one of {' '.join(self.algs)}")
        if "crit" in header:
            raise _invalid("no critical header extension is understood")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise _invalid("the header has no jwk object")
        return alg, jwk

    def _check_claims(
        self, claims: Mapping[str, Any], method: str, url: str
    ) -> tuple[str, str, str, float]:
        jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_LENGTH:
            raise _invalid("jti must be a non-empty string")
        if not isinstance(htm, str) or not isinstance(htu, str):
            raise _invalid("htm and htu must be strings")
        if isinstance(iat, bool) or not isinstance(iat, (int, float)):
            raise _invalid("iat must be a number")
        if htm != method:
            raise _invalid("htm does not match the request method")
        if not _same_target(htu, url):
            raise _invalid("htu does not match the request URI")
        try:
            age = self._clock() - float(iat)
        except OverflowError:
            age = math.inf
        if not abs(age) <= self.max_age:
            raise _invalid(f"iat is not within {self.max_age:g} seconds of the server's clock")
        return jti, htm, htu, float(iat)

    def _check_nonce(self, nonce: object) -> str | None:
        if nonce is not None and not isinstance(nonce, str):
            raise _invalid("nonce must be a string")
        if nonce is None and self.require_nonce:
            raise DPoPError("use_dpop_nonce", "Server requires nonce in DPoP proof")
        if nonce is not None and not self._known_nonce(nonce):
            raise DPoPError("use_dpop_nonce", "DPoP proof nonce is unknown or expired")
        return nonce

    @staticmethod
    def _one_proof(proofs: str | Sequence[str] | None) -> str:
        values = [proofs] if isinstance(proofs, str) else list(proofs or ())
        if not values:
            raise _invalid("the request has no DPoP header")
        if len(values) > 1:
            raise _invalid("the request has more than one DPoP header")
        proof = values[0]
        if not isinstance(proof, str):
            raise _invalid("the DPoP header is not text")
        return proof.strip()

    @staticmethod
    def _parse(proof: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
        if len(proof) > _MAX_PROOF_LENGTH:
            raise _invalid("the DPoP proof is too long")
        parts = proof.split(".")
        if len(parts) != 3:
            raise _invalid("the DPoP proof is not a compact JWS")
        header = _json_object(parts[0], "JOSE header")
        claims = _json_object(parts[1], "JWT payload")
        signature = _b64decode(parts[2], "signature")
        return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature

    @staticmethod
    def _check_jwk(jwk: Mapping[str, Any], alg: str) -> str:
        if _PRIVATE_MEMBERS & set(jwk):
            raise _invalid("the jwk holds a private key")
        kty = jwk.get("kty")
        wanted = "EC" if alg.startswith("ES") else "OKP" if alg == "EdDSA" else "RSA"
        if kty != wanted:
            raise _invalid(f"alg {alg} needs a {wanted} key")
        names = _REQUIRED_MEMBERS[wanted]
        if not all(isinstance(jwk.get(name), str) for name in names):
            raise _invalid("the jwk lacks a required member")
        crv = jwk.get("crv")
        if (wanted == "EC" and crv != _EC_CURVES[alg]) or (
                wanted == "OKP" and crv not in _OKP_CURVES):
            raise _invalid(f"alg {alg} does not go with this key's curve")
        for name in _KEY_MEMBERS[wanted]:
            _b64decode(jwk[name], f"jwk member {name}")
        if wanted == "RSA" and not (
                _RSA_BYTES[0] <= len(_b64decode(jwk["n"], "jwk n")) <= _RSA_BYTES[1]):
            raise _invalid("the RSA key must have 2048 to 8192 bits")
        return jwk_thumbprint(jwk)

    def _remember(self, jti: str, expires: float) -> None:
        """Record a jti as used (RFC 9449 §11.1), or refuse it as replayed."""
        with self._lock:
            now = self._clock()
            while self._seen_order and self._seen_order[0][0] < now:
                _, old = self._seen_order.popleft()
                if self._seen.get(old, math.inf) < now:
                    del self._seen[old]
            if jti in self._seen:
                raise _invalid("the DPoP proof was replayed (jti seen before)")
            if len(self._seen) >= _REPLAY_CACHE_LIMIT:
                raise _invalid("too many recent DPoP proofs; try again later")
            self._seen[jti] = expires
            self._seen_order.append((expires, jti))


def _same_target(htu: str, url: str) -> bool:
    try:
        return normalize_htu(htu) == normalize_htu(url)
    except ValueError:  # an htu that is no URL, or a port out of range
        return False


def _verify_signature(alg: str, jwk: Mapping[str, Any], signing_input: bytes,
                      signature: bytes) -> None:
    """Verify the JWS signature with the header's own key (PyJWT imported only here)."""
    import jwt
    from cryptography.exceptions import UnsupportedAlgorithm

    algorithm = jwt.algorithms.get_default_algorithms()[alg]
    try:
        key = algorithm.from_jwk(dict(jwk))
        valid = algorithm.verify(signing_input, key, signature)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, OverflowError,
            UnsupportedAlgorithm) as exc:
        raise _invalid("the jwk is not a usable public key") from exc
    if not valid:
        raise _invalid("the signature does not verify with the jwk")
