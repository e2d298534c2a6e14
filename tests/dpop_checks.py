"""What a DPoP-checking server and an auditor of a cache check, independently of the
client's code: DPoP proofs (RFC 9449 §4.3), RFC 7638 thumbprints, and whether stored bytes
hold any of a private key's material."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def rfc7638(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, computed here independently."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
               "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"),
                           sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verified_proof(proof: str, method: str, url: str, access_token: str | None = None) -> str:
    """Check a DPoP proof as a server would (RFC 9449 §4.3: type, public key only, signature
    by that key, ``htm``, ``htu``, ``ath``); the thumbprint of its key."""
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt"
    jwk = header["jwk"]
    assert "d" not in jwk
    claims = jwt.decode(proof, jwt.PyJWK(jwk, header["alg"]).key, algorithms=[header["alg"]])
    assert claims["htm"] == method
    assert claims["htu"] == url
    assert claims["jti"]
    if access_token is not None:
        ath = hashlib.sha256(access_token.encode()).digest()
        assert claims["ath"] == base64.urlsafe_b64encode(ath).rstrip(b"=").decode()
    else:
        assert "ath" not in claims
    return rfc7638(jwk)


def private_material(key: Any) -> list[bytes]:
    """The secret numbers of a private key (as big-endian bytes), and its PKCS #8 DER."""
    def number(n: int) -> bytes:
        return n.to_bytes((n.bit_length() + 7) // 8, "big")

    secrets: list[bytes] = [key.private_bytes(serialization.Encoding.DER,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        secrets.append(number(key.private_numbers().private_value))
    elif isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        secrets += [number(v) for v in (n.d, n.p, n.q, n.dmp1, n.dmq1, n.iqmp)]
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        secrets.append(key.private_bytes(serialization.Encoding.Raw,
                                         serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption()))
    return secrets


def leaks(data: bytes, key: Any) -> list[str]:
    """What of ``key``'s private material ``data`` holds: raw, hex (either case), base64 or
    base64url at any byte alignment, a PEM private key, or a JWK ``d`` member."""
    found = []
    text = data.decode("latin-1")
    for index, secret in enumerate(private_material(key)):
        forms = {"raw": secret.decode("latin-1"), "hex": secret.hex(),
                 "HEX": secret.hex().upper()}
        for shift in range(3):  # base64 of the secret starting at any of 3 byte alignments
            chunk = secret[shift:]
            for name, encode in (("base64", base64.b64encode),
                                 ("base64url", base64.urlsafe_b64encode)):
                encoded = encode(chunk).decode().rstrip("=")
                forms[f"{name}+{shift}"] = encoded[: len(encoded) - 2]  # edge chars vary
        found += [f"secret {index} as {form}" for form, value in forms.items()
                  if len(value) >= 16 and value in text]
    if b"PRIVATE KEY" in data or b"-----BEGIN" in data:
        found.append("a PEM block")
    if re.search(rb'\\?"d\\?"\s*:', data):
        found.append('a JWK "d" member')
    return found


def has_member(value: object, name: str) -> bool:
    """Whether a decoded JSON value holds an object with member ``name``, at any depth."""
    if isinstance(value, dict):
        return name in value or any(has_member(v, name) for v in value.values())
    if isinstance(value, list):
        return any(has_member(v, name) for v in value)
    return False

