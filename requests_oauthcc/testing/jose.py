"""The JOSE pieces of a DPoP proof check, read strictly: compact JWS parsing (RFC 7515
§7.1), public JWK checks, RFC 7638 thumbprints, signature verification.

Every refusal is a :class:`JoseError` whose message never repeats the input; PyJWT and
cryptography are imported only by :func:`verify_signature`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["JoseError", "check_public_jwk", "jwk_thumbprint", "parse_compact_jws",
           "verify_signature"]

_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
_REQUIRED_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                     "OKP": ("crv", "kty", "x")}
_KEY_MEMBERS = {"EC": ("x", "y"), "RSA": ("n", "e"), "OKP": ("x",)}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_MAX_PROOF_LENGTH = 8192  # an RSA-8192 proof fits; anything longer is refused unparsed
_RSA_BYTES = (256, 1024)  # 2048 to 8192-bit moduli


class JoseError(ValueError):
    """A malformed JWS or an unusable key; the message says which rule, never the input."""


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
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
    return b64url(hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest())


def _b64decode(part: str, what: str) -> bytes:
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise JoseError(f"the {what} is not base64url")
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
        raise JoseError(f"the {what} is not a JSON object") from exc
    if not isinstance(value, dict):
        raise JoseError(f"the {what} is not a JSON object")
    return value


def parse_compact_jws(proof: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """``(header, payload, signing input, signature)`` of a compact JWS whose header and
    payload are JSON objects (no duplicate members, no NaN), at most 8192 characters."""
    if len(proof) > _MAX_PROOF_LENGTH:
        raise JoseError("the DPoP proof is too long")
    parts = proof.split(".")
    if len(parts) != 3:
        raise JoseError("the DPoP proof is not a compact JWS")
    header = _json_object(parts[0], "JOSE header")
    claims = _json_object(parts[1], "JWT payload")
    signature = _b64decode(parts[2], "signature")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def check_public_jwk(jwk: Mapping[str, Any], alg: str) -> str:
    """The RFC 7638 thumbprint of ``jwk`` if it is a public key fit for ``alg``: the key
    type and curve of the algorithm, no private member, base64url members, RSA of 2048 to
    8192 bits."""
    if _PRIVATE_MEMBERS & set(jwk):
        raise JoseError("the jwk holds a private key")
    kty = jwk.get("kty")
    wanted = "EC" if alg.startswith("ES") else "OKP" if alg == "EdDSA" else "RSA"
    if kty != wanted:
        raise JoseError(f"alg {alg} needs a {wanted} key")
    names = _REQUIRED_MEMBERS[wanted]
    if not all(isinstance(jwk.get(name), str) for name in names):
        raise JoseError("the jwk lacks a required member")
    crv = jwk.get("crv")
    if (wanted == "EC" and crv != _EC_CURVES[alg]) or (
            wanted == "OKP" and crv not in _OKP_CURVES):
        raise JoseError(f"alg {alg} does not go with this key's curve")
    for name in _KEY_MEMBERS[wanted]:
        _b64decode(jwk[name], f"jwk member {name}")
    if wanted == "RSA" and not (
            _RSA_BYTES[0] <= len(_b64decode(jwk["n"], "jwk n")) <= _RSA_BYTES[1]):
        raise JoseError("the RSA key must have 2048 to 8192 bits")
    return jwk_thumbprint(jwk)


def verify_signature(alg: str, jwk: Mapping[str, Any], signing_input: bytes,
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
        raise JoseError("the jwk is not a usable public key") from exc
    if not valid:
        raise JoseError("the signature does not verify with the jwk")
