"""The command line, run as a real process against the local server."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from requests_oauthcc.cli import _OPTIONS, main
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET
from .keys import ec_pair, ed25519_pair, jwk_thumbprint, public_thumbprint, rsa_pair, verified_proof


def run(*args: str, env: dict[str, str] | None = None, stdin: str = "",
        ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OAUTH_")}
    return subprocess.run([sys.executable, "-m", "requests_oauthcc", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, env={**clean, **(env or {})})


def base_env(server: OAuthTestServer) -> dict[str, str]:
    return {"OAUTH_TOKEN_URL": server.token_url, "OAUTH_CLIENT_ID": CLIENT_ID,
            "OAUTH_CLIENT_SECRET": CLIENT_SECRET}


def test_token_prints_the_bare_token(server: OAuthTestServer) -> None:
    """`token` prints exactly the access token, ready for curl -H."""
    result = run("token", env=base_env(server))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == server.access_tokens_issued[-1]
    assert result.stderr == ""


def test_token_json_has_the_response_and_expiry(server: OAuthTestServer) -> None:
    """--json prints the whole token response plus an ISO expires_at."""
    result = run("token", "--json", "--scope", "read", env=base_env(server))
    document = json.loads(result.stdout)
    assert document["access_token"] == server.access_tokens_issued[-1]
    assert document["expires_in"] == 3600 and document["scope"] == "read"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", document["expires_at"])


def test_secret_from_file_and_from_stdin(server: OAuthTestServer, tmp_path: Path) -> None:
    """The secret can come from a file or from stdin instead of the environment."""
    env = {"OAUTH_TOKEN_URL": server.token_url, "OAUTH_CLIENT_ID": CLIENT_ID}
    secret_file = tmp_path / "secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    assert run("token", "--client-secret-file", str(secret_file), env=env).returncode == 0
    assert run("token", "--client-secret-stdin", env=env,
               stdin=CLIENT_SECRET + "\n").returncode == 0
    assert server.token_requests == 2


def test_secret_as_a_flag_needs_insisting(server: OAuthTestServer) -> None:
    """--client-secret alone is a usage error (it shows in ps); with the opt-in it works."""
    env = {"OAUTH_TOKEN_URL": server.token_url, "OAUTH_CLIENT_ID": CLIENT_ID}
    refused = run("token", "--client-secret", CLIENT_SECRET, env=env)
    assert refused.returncode == 2 and "ps" in refused.stderr
    assert CLIENT_SECRET not in refused.stderr
    allowed = run("token", "--client-secret", CLIENT_SECRET, "--allow-secret-in-argv", env=env)
    assert allowed.returncode == 0


def test_missing_configuration_is_exit_2(server: OAuthTestServer) -> None:
    """A missing client id is a usage error naming the variable and pointing at the flag."""
    result = run("token", env={"OAUTH_TOKEN_URL": server.token_url,
                               "OAUTH_CLIENT_SECRET": CLIENT_SECRET})
    assert result.returncode == 2
    assert "OAUTH_CLIENT_ID" in result.stderr and "--help" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_refused_by_the_endpoint_is_exit_3(server: OAuthTestServer) -> None:
    """A wrong secret: exit 3, one stderr line with the RFC error and its description."""
    env = {**base_env(server), "OAUTH_CLIENT_SECRET": "not-the-secret-123"}
    result = run("token", env=env)
    assert result.returncode == 3
    [line] = result.stderr.strip().splitlines()
    assert "invalid_client: unknown client or wrong secret" in line
    assert "not-the-secret-123" not in line


def test_network_failure_is_exit_4(server: OAuthTestServer) -> None:
    """Nothing listening: exit 4."""
    env = base_env(server)
    server.stop()
    result = run("token", "--timeout", "2", env=env)
    assert result.returncode == 4 and "could not reach" in result.stderr


def test_request_prints_status_and_body_and_verbose_shows_decisions(
    server: OAuthTestServer,
) -> None:
    """`request GET URL` prints the status and body; -v shows fetch and retry, no secrets."""
    result = run("request", "GET", server.url("/unauthorized"), "-v", env=base_env(server))
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "401 Unauthorized"
    assert "fetched token for client_id=test-client" in result.stderr
    assert "retrying once with a new token" in result.stderr
    events = [line for line in result.stderr.splitlines() if line.startswith("* event: ")]
    assert [line.split("(")[0] for line in events] == [
        "* event: TokenFetched", "* event: TokenFetched", "* event: RequestRetried",
        "* event: RequestNotRetried"]
    assert "reason='already_retried'" in events[-1]
    for secret in [CLIENT_SECRET, *server.access_tokens_issued]:
        assert secret not in result.stderr + result.stdout
    ok = run("request", "POST", server.resource_url, "--data", "hello", "-H", "X-Test: 1",
             env=base_env(server))
    status, body = ok.stdout.split("\n", 1)
    assert status == "200 OK" and json.loads(body)["body_length"] == 5


def test_help_lists_every_option_with_its_variable() -> None:
    """--help of each command names every option and its environment variable."""
    for command in ("token", "request"):
        text = " ".join(run(command, "--help").stdout.split())
        for flag, env, _ in _OPTIONS:
            assert flag in text
            if env:
                assert f"[env: {env}]" in text


def test_console_script_is_installed() -> None:
    """pip installs the requests-oauthcc console script."""
    script = shutil.which("requests-oauthcc")
    assert script is not None, "pip install -e . installs it"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "token" in result.stdout


def test_bad_inputs_end_in_one_line_and_a_documented_exit_code(
    server: OAuthTestServer, tmp_path: Path
) -> None:
    """Files that cannot work and hostile answers: never a traceback, only exit 2/3/4 and
    one stderr line (0.2.0 printed a UnicodeDecodeError traceback for a binary secret file
    and an OSError one for a missing --cert)."""
    binary = tmp_path / "secret.bin"
    binary.write_bytes(b"\xff\xfe\x00secret")
    env = {"OAUTH_TOKEN_URL": server.token_url, "OAUTH_CLIENT_ID": CLIENT_ID}
    cases = [
        (["token", "--client-secret-file", str(binary)], {}, 2, "not UTF-8"),
        (["token", "--cert", str(tmp_path / "missing.pem")],
         {"OAUTH_CLIENT_SECRET": CLIENT_SECRET}, 2, "does not exist"),
        (["token", "--ca-bundle", str(tmp_path / "missing-ca.pem")],
         {"OAUTH_CLIENT_SECRET": CLIENT_SECRET}, 2, "session.verify"),
    ]
    for args, extra, code, words in cases:
        result = run(*args, env={**env, **extra})
        assert result.returncode == code, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert words in line and "Traceback" not in line
    deep = "[" * 100_000 + "]" * 100_000
    for body in (deep, '{"access_token": ' + deep + "}", b"\xff\xfe{]"):
        server.queue_response(200, body)
        result = run("token", env={**env, "OAUTH_CLIENT_SECRET": CLIENT_SECRET})
        assert result.returncode == 3, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert "Traceback" not in line


def test_retries_stay_off_stderr_and_odd_input_is_a_usage_error(
    server: OAuthTestServer,
) -> None:
    """Without -v, the retries' WARNING lines do not reach stderr (the error stays one
    line); a method that is not an HTTP token is exit 2, not an internal error; --version
    prints the version."""
    server.queue_response(503, "busy", count=10)
    result = run("token", env=base_env(server))
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    odd = run("request", "G ET\r\n", server.resource_url, env=base_env(server))
    assert odd.returncode == 2 and "is not an HTTP method" in odd.stderr
    assert len(odd.stderr.strip().splitlines()) == 1, odd.stderr  # argparse's usage too
    unknown = run("bogus")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    version = run("--version")
    assert version.returncode == 0 and re.fullmatch(r"requests-oauthcc \d+\.\d+\.\d+\s*",
                                                    version.stdout)


def test_demo_works_behind_a_proxy_set_in_the_environment() -> None:
    """The demo talks to this host only: an HTTP_PROXY in the environment (as behind a
    corporate proxy) does not break it (it crashed with a traceback before)."""
    result = run("demo", env={"HTTP_PROXY": "http://proxy.invalid:3128"})
    assert result.returncode == 0, result.stderr
    assert "demo finished: all checks passed" in result.stdout


# -- DPoP (RFC 9449) ------------------------------------------------------------------------


def proof_sent(server: OAuthTestServer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of the DPoP proof of the server's last token request."""
    headers = {k.lower(): v for k, v in server.token_log[-1].headers.items()}
    assert "dpop" in headers, "the token request carried no DPoP proof"
    return verified_proof(headers["dpop"])


def test_dpop_key_file_binds_the_token_and_verbose_shows_the_thumbprint(
    tmp_path: Path,
) -> None:
    """`token --dpop-key k.pem`: the token request carries a proof signed by that key; a
    server answering with a DPoP token has it printed (bare, with a one-line note on
    stderr), --json shows token_type DPoP, and -v shows the key's RFC 7638 thumbprint,
    never the key."""
    pair = ec_pair()
    pem = tmp_path / "dpop.pem"
    pem.write_text(pair.private_pem)
    with OAuthTestServer({CLIENT_ID: CLIENT_SECRET}, token_type="DPoP") as server:
        env = base_env(server)
        bare = run("token", "--dpop-key", str(pem), env=env)
        assert bare.returncode == 0, bare.stderr
        assert bare.stdout.strip() == server.access_tokens_issued[-1]
        assert "DPoP-bound token" in bare.stderr and len(bare.stderr.splitlines()) == 1
        header, claims = proof_sent(server)
        assert header["alg"] == "ES256"
        assert jwk_thumbprint(header["jwk"]) == public_thumbprint(pair)
        assert claims["htm"] == "POST" and claims["htu"] == server.token_url
        document = json.loads(run("token", "--json", "--dpop-key", str(pem), env=env).stdout)
        assert document["token_type"] == "DPoP"
        verbose = run("token", "-v", "--dpop-key", str(pem), env=env)
        assert verbose.returncode == 0, verbose.stderr
        assert f"thumbprint {public_thumbprint(pair)}" in verbose.stderr
        assert "token_type=DPoP" in verbose.stderr
        assert_no_key_material(pair.private_pem, verbose.stdout + verbose.stderr)


def test_dpop_jwk_file_from_the_environment_with_an_algorithm(
    server: OAuthTestServer, tmp_path: Path
) -> None:
    """OAUTH_DPOP_KEY_FILE may hold a private JWK as JSON and OAUTH_DPOP_ALG chooses among
    the key's algorithms (PS256 for RSA); `request` then gets a token bound to that key
    and calls the API with it and a proof."""
    pair = rsa_pair()
    jwk_file = tmp_path / "dpop.jwk"
    jwk_file.write_text(json.dumps(pair.private_jwk()))
    env = {**base_env(server), "OAUTH_DPOP_KEY_FILE": str(jwk_file), "OAUTH_DPOP_ALG": "PS256"}
    result = run("request", "GET", server.resource_url, "-v", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "200 OK"
    header, _ = proof_sent(server)
    assert header["alg"] == "PS256"
    assert jwk_thumbprint(header["jwk"]) == public_thumbprint(pair)
    assert f"thumbprint {public_thumbprint(pair)}" in result.stderr
    assert "token_type=DPoP" in result.stderr
    assert json.loads(result.stdout.split("\n", 1)[1])["dpop_jkt"] == public_thumbprint(pair)
    assert_no_key_material(json.dumps(pair.private_jwk()), result.stdout + result.stderr)


def test_dpop_flags_win_over_the_variables(server: OAuthTestServer, tmp_path: Path) -> None:
    """--dpop-key wins over OAUTH_DPOP_KEY_FILE (which is then not even read: a broken one
    does not matter), and --dpop-alg alone applies to the variable's key."""
    pair, other = ed25519_pair(), rsa_pair()
    pem, rsa_pem = tmp_path / "ed.pem", tmp_path / "rsa.pem"
    pem.write_text(pair.private_pem)
    rsa_pem.write_text(other.private_pem)
    env = {**base_env(server), "OAUTH_DPOP_KEY_FILE": str(tmp_path / "missing.pem"),
           "OAUTH_DPOP_ALG": "RS512"}
    result = run("token", "--dpop-key", str(pem), "--dpop-alg", "EdDSA", env=env)
    assert result.returncode == 0, result.stderr
    header, _ = proof_sent(server)
    assert header["alg"] == "EdDSA"
    assert jwk_thumbprint(header["jwk"]) == public_thumbprint(pair)
    env["OAUTH_DPOP_KEY_FILE"] = str(rsa_pem)
    result = run("token", "--dpop-alg", "PS384", env=env)
    assert result.returncode == 0, result.stderr
    header, _ = proof_sent(server)
    assert header["alg"] == "PS384"
    assert jwk_thumbprint(header["jwk"]) == public_thumbprint(other)


def assert_no_key_material(private_text: str, output: str) -> None:
    """No 16-character run of a key file's content (PEM body, JWK members) in ``output``."""
    material = re.sub(r"-----[A-Z ]+-----|[\s\"{}:,]", "", private_text)
    for start in range(len(material) - 15):
        assert material[start:start + 16] not in output, "key material in the output"


def test_dpop_key_files_that_cannot_work_end_in_one_line_without_key_material(
    server: OAuthTestServer, tmp_path: Path
) -> None:
    """An encrypted PEM (passwords are not taken), a public key, garbage, a broken or public
    JWK, several keys, an algorithm the key cannot sign, a missing file, a directory,
    /dev/zero: exit 2, one stderr line naming the flag or variable, nothing sent to the
    token endpoint, and no part of the file's content in the output."""

    pair = ec_pair()
    encrypted = pair.encrypted_pem(b"wrong-password").decode()
    jwk = pair.private_jwk()
    broken_jwk = {**jwk, "d": "QUJD" + jwk["d"][4:-6]}  # a private key that is not one
    files = {
        "encrypted.pem": (encrypted, "it is encrypted: give its password"),
        "public.pem": (pair.public_pem, "a public key or a certificate, not a private key"),
        "empty.pem": ("", "is empty"),
        "readme.txt": ("just some text, not a key\n", "holds no PEM private key"),
        "garbage.pem": ("-----BEGIN PRIVATE KEY-----\nR4rB4g3G4rb4g3xyzzyPLUGHmn0pq\n"
                        "-----END PRIVATE KEY-----\n", "could not be loaded"),
        "public.jwk": (json.dumps({k: v for k, v in jwk.items() if k != "d"}),
                       "public JWK"),
        "broken.jwk": (json.dumps(broken_jwk), "could not be loaded"),
        "two.jwks": (json.dumps({"keys": [jwk, jwk]}), "JWK Set of 2 keys"),
        "truncated.jwk": (json.dumps(jwk)[:-20], "not valid JSON"),
    }
    env = base_env(server)
    cases: list[tuple[list[str], dict[str, str], str, str]] = []
    for name, (content, words) in files.items():
        (tmp_path / name).write_text(content)
        cases.append((["--dpop-key", str(tmp_path / name)], {}, words, content))
    pem = tmp_path / "good.pem"
    pem.write_text(pair.private_pem)
    cases += [
        (["--dpop-key", str(pem), "--dpop-alg", "RS256"], {},
         "--dpop-alg 'RS256' does not fit", pair.private_pem),
        (["--dpop-key", str(tmp_path / "missing.pem")], {}, "No such file", ""),
        (["--dpop-key", str(tmp_path)], {}, "not a regular file", ""),
        (["--dpop-key", "/dev/zero"], {}, "not a regular file", ""),
        (["--dpop-alg", "ES256"], {}, "--dpop-alg needs a key", ""),
        (["--dpop-key", ""], {}, "--dpop-key is empty", ""),
        (["--dpop-key", pair.private_pem], {}, "--dpop-key: DPoP key file (a path to no file;",
         pair.private_pem),
        ([], {"OAUTH_DPOP_KEY_FILE": " "}, "OAUTH_DPOP_KEY_FILE is set but empty", ""),
        ([], {"OAUTH_DPOP_KEY_FILE": json.dumps(jwk)}, "a path to no file; not shown",
         json.dumps(jwk)),
        ([], {"OAUTH_DPOP_KEY_FILE": str(tmp_path / "public.pem")}, "OAUTH_DPOP_KEY_FILE",
         pair.public_pem),
        ([], {"OAUTH_DPOP_ALG": "ES256"}, "OAUTH_DPOP_KEY_FILE is not", ""),
    ]
    commands = (["token"], ["request", "GET", server.resource_url])  # one path: take turns
    for index, (flags, extra, words, content) in enumerate(cases):
        result = run(*commands[index % 2], *flags, env={**env, **extra})
        assert result.returncode == 2, (flags, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert words in line and "Traceback" not in line, line
        assert line.startswith("requests-oauthcc: error: ")
        assert_no_key_material(content, result.stdout + result.stderr)
    assert server.token_requests == 0


# -- inspect: describing a token without verifying it ---------------------------------------


def jwt_part(value: object) -> str:
    """``value`` as JSON, base64url-encoded without padding (a JWT segment)."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


SIGNATURE = "c2lnbmF0dXJlLW5vdC1jaGVja2Vk"  # a dummy: inspect never verifies anything


def jws(header: object, claims: object, signature: str = SIGNATURE) -> str:
    """A JWS compact serialization with ``signature`` as its (unchecked) signature."""
    return f"{jwt_part(header)}.{jwt_part(claims)}.{signature}"


def inspect(stdin: str | bytes, *args: str) -> tuple[int, str, str]:
    """``main(["inspect", *args])`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    data = stdin.encode() if isinstance(stdin, str) else stdin
    source = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    with contextlib.redirect_stderr(err):
        code = main(["inspect", *args], out=out, stdin=source)
    return code, out.getvalue(), err.getvalue()


def short_print(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def test_inspect_shows_a_jws_header_claims_and_summary_never_the_token() -> None:
    """A JWT access token: its header and claims labelled not verified, then exp as a date
    and seconds left, aud, scope, cnf.jkt read as DPoP binding, iss, sub, client_id, and
    the token's fingerprint; neither the token nor its signature is printed. --json gives
    the same as an object."""
    now = int(time.time())
    claims = {"iss": "https://auth.example.com", "sub": "svc", "client_id": "svc",
              "aud": ["https://api.example.com"], "scope": "read write", "exp": now + 3600,
              "iat": now - 5, "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}
    token = jws({"alg": "RS256", "typ": "at+jwt", "kid": "key-1"}, claims)
    code, out, err = inspect(token + "\n")
    assert code == 0 and err == ""
    assert "NOT VERIFIED" in out and "header (not verified):" in out
    assert '"kid": "key-1"' in out and '"sub": "svc"' in out
    expiry = datetime.datetime.fromtimestamp(now + 3600, datetime.timezone.utc)
    [left] = re.findall(rf"exp: +{re.escape(expiry.isoformat())} \(in (\d+) s\)", out)
    assert 3500 <= int(left) <= 3600
    assert re.search(r"iat: +\S+ \(\d+ s ago\)", out)
    assert re.search(r'aud: +\["https://api.example.com"\]', out)
    assert re.search(r'scope: +"read write"', out)
    assert "bound to a DPoP key (RFC 9449)" in out
    for name in ("iss", "sub", "client_id"):
        assert re.search(rf"\n  {name}: +\"", out)
    assert f"fingerprint: {short_print(token)} " in out
    assert token not in out and SIGNATURE not in out
    code, out, _ = inspect(token, "--json")
    report = json.loads(out)
    assert code == 0 and report["kind"] == "jws" and report["verified"] is False
    assert report["claims"] == claims and report["header"]["alg"] == "RS256"
    assert 3500 <= report["summary"]["exp"]["seconds_from_now"] <= 3600
    assert report["summary"]["cnf"]["bound_to"][0].startswith("a DPoP key")
    assert SIGNATURE not in out
    certificate_bound = jws({"alg": "ES256"}, {"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9"
                                                                   "ltc05O89jdN-dg2"}})
    _, out, _ = inspect(certificate_bound)
    assert "bound to a client certificate (RFC 8705)" in out
    assert "no exp claim" in out


def test_inspect_says_expired_and_clock_skew() -> None:
    """An exp in the past reads "expired N s ago"; an iat or nbf in the future is noted as a
    likely clock disagreement between this host and the issuer."""
    now = int(time.time())
    token = jws({"alg": "RS256"}, {"exp": now - 120, "iat": now + 600, "nbf": now + 600})
    code, out, _ = inspect(token)
    assert code == 0
    [ago] = re.findall(r"exp: +\S+ \(expired (\d+) s ago\)", out)
    assert 110 <= int(ago) <= 200
    assert re.search(r"nbf: +\S+ \(\d+ s in the future\)", out)
    assert out.count("the clocks of this host and the issuer may disagree") == 2
    broken = jws({"alg": "none"}, {"exp": "tomorrow", "iat": 1e300})
    code, out, _ = inspect(broken)
    assert code == 0 and "its exp claim is not a number of seconds" in out
    assert "beyond the dates this host can show" in out and "alg none" in out


def test_inspect_opaque_jwe_and_unreadable_tokens() -> None:
    """An opaque token shows its length and fingerprint only; a JWE its protected header
    (its claims cannot be read); a token with a JWT's dots that does not decode is opaque
    with the reason. All exit 0 and none prints the token."""
    opaque = "2YotnFZFEjr1zCsicMWpAA-opaque-token"
    code, out, _ = inspect(opaque)
    assert code == 0 and out.startswith("opaque token (not a JWT)")
    assert f"length: {len(opaque)} characters" in out and short_print(opaque) in out
    assert opaque not in out
    jwe = f"{jwt_part({'alg': 'RSA-OAEP-256', 'enc': 'A256GCM', 'kid': 'k'})}.ZW5j.aXY.Y3Q.dGFn"
    code, out, _ = inspect(jwe)
    assert code == 0 and "encrypted JWT (JWE" in out and "cannot be read" in out
    assert '"enc": "A256GCM"' in out and jwe not in out and "Y3Q" not in out
    unreadable = f"{jwt_part({'alg': 'RS256'})}.bm90LWpzb24.{SIGNATURE}"
    code, out, _ = inspect(unreadable)
    assert code == 0 and out.startswith(
        "opaque token: it has the dots of a JWT but its payload is not a base64url-encoded "
        "JSON object")
    assert SIGNATURE not in out
    assert json.loads(inspect(unreadable, "--json")[1])["problem"].startswith("it has the dots")


def test_inspect_reads_authorization_headers_and_the_token_json_document() -> None:
    """'Bearer T', 'DPoP T' and 'Authorization: Bearer T' describe T; the JSON of
    `token --json` describes its access_token and shows its token_type, scope and
    expires_at, never the access_token nor the other members (refresh_token)."""
    token = jws({"alg": "RS256"}, {"sub": "svc"})
    expected = f"fingerprint: {short_print(token)} "
    for text in (f"Bearer {token}", f"DPoP {token}\n", f"Authorization: Bearer {token}",
                 f"  authorization:bearer   {token}\r\n"):
        code, out, _ = inspect(text)
        assert code == 0 and expected in out and '"sub": "svc"' in out, text
    document = {"access_token": token, "token_type": "DPoP", "scope": "read",
                "expires_in": 3600, "expires_at": "2030-01-01T00:00:00+00:00",
                "refresh_token": "refresh-Tq9vXk2"}
    code, out, _ = inspect(json.dumps(document, indent=2))
    assert code == 0 and expected in out
    assert ('token response: token_type "DPoP", scope "read", '
            'expires_at "2030-01-01T00:00:00+00:00"') in out
    assert token not in out and "refresh-Tq9vXk2" not in out and SIGNATURE not in out
    report = json.loads(inspect(json.dumps(document), "--json")[1])
    assert report["token_response"] == {"token_type": "DPoP", "scope": "read",
                                        "expires_at": "2030-01-01T00:00:00+00:00"}


def test_inspect_without_a_token_is_a_usage_error_in_one_line() -> None:
    """Empty input, more than 64 KiB, bytes that are not UTF-8, several words, a JSON
    document with no access_token: exit 2, one stderr line, nothing on stdout, and none of
    the input quoted."""
    cases: list[tuple[str | bytes, str]] = [
        ("", "stdin is empty"), (" \n\t ", "stdin is empty"),
        ("x" * (64 * 1024 + 1), "more than 64 KiB"), (b"\xff\xfeabc-token-Wq3", "not UTF-8"),
        ("Basic dXNlci1WcTk6cGFzcw==", "2 words"), ("Bearer", "no token after"),
        ("Authorization: ", "no token after"), ("{not json-Wq3", "not a JSON object"),
        ('{"access_token": 12, "scope": "s-Wq3"}', "no access_token string"),
        ('{"access_token": "Wq3-\\udc80"}', "unpaired surrogate")]
    for stdin, words in cases:
        code, out, err = inspect(stdin)
        assert code == 2 and out == "", stdin
        [line] = err.splitlines()
        assert line.startswith("requests-oauthcc: error: ") and words in line, line
        assert "Wq3" not in line and "dXNl" not in line
    assert inspect("x" * (64 * 1024))[0] == 0  # exactly 64 KiB is still read


class Terminal(io.TextIOWrapper):
    """A stdin that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_inspect_on_a_terminal_says_it_reads_stdin() -> None:
    """Run by hand with nothing piped in, inspect first says on stderr that it reads a
    token from stdin and how to end it, rather than seeming to hang."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["inspect"], out=io.StringIO(),
                    stdin=Terminal(io.BytesIO(b"opaque-token-123\n"), encoding="utf-8"))
    assert code == 0
    assert err.getvalue() == "requests-oauthcc: reading a token from stdin (Ctrl-D to end)\n"


def test_inspect_output_holds_no_control_characters_from_a_hostile_token() -> None:
    """Terminal escapes, newlines, bidi overrides and NULs in claims, header and
    token_type come out escaped: stdout is printable ASCII and newlines only; long values
    are cut and deep nesting replaced, in both the text and the JSON form."""
    hostile = "\x1b[2J\x1b]0;owned\x07\r\nnote: forged\u202etxt\x00\x9b31m\u2028"
    deep: list[object] = []
    for _ in range(500):
        deep = [deep]
    token = jws({"alg": "RS256", "kid": hostile, hostile: 1},
                {"sub": hostile, "aud": hostile, "scope": [hostile], "long": "y" * 5000,
                 "deep": deep, "cnf": {"jkt": hostile}, "big": 10 ** 300})
    document = json.dumps({"access_token": token, "token_type": hostile})
    for args in ((), ("--json",)):
        code, out, err = inspect(document, *args)
        assert code == 0 and err == ""
        assert all(" " <= ch <= "~" for ch in out.replace("\n", "")), args
        assert "y" * 513 not in out and "[cut: 5000 characters]" in out
        assert "nested deeper than 16 levels" in out and "a number of 301 digits" in out
        assert "\nnote: forged" not in out


def _printable(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text.replace("\n", ""))


_JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.integers(0xD800, 0xDFFF).map(chr))  # JSON's "\\ud800": an unpaired surrogate
_JSON_VALUES = _JSON_LEAVES | st.recursive(
    _JSON_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=5), inner, max_size=3), max_leaves=8)
_MEMBERS = st.dictionaries(st.sampled_from(["alg", "enc", "exp", "iat", "nbf", "aud", "scope",
                                            "scp", "cnf", "iss", "sub", "client_id"]),
                           _JSON_VALUES, max_size=6)
_DOCUMENTS = st.dictionaries(st.sampled_from(["access_token", "token_type", "scope",
                                              "expires_at", "refresh_token"]), _JSON_VALUES)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(
    st.binary(max_size=300), st.text(max_size=300).map(str.encode),
    st.lists(st.sampled_from(["eyJ", ".", "Bearer ", "{", "}", '"', "a", "=", "access_token",
                              ":", "\n", "\x1b", "\u202e"]), max_size=40).map(
        lambda parts: "".join(parts).encode()),
    _DOCUMENTS.map(lambda document: json.dumps(document).encode()),
    st.builds(jws, _MEMBERS, _MEMBERS, st.just(SIGNATURE)).map(str.encode),
    st.builds(lambda header: f"{jwt_part(header)}.a.b.c.d", _MEMBERS).map(str.encode)))
def test_inspect_never_raises_on_any_input(data: bytes) -> None:
    """Whatever is on stdin (bytes, text, JWTs and `token --json` documents with claims of
    any JSON value), inspect exits 0 or 2 with printable ASCII on stdout and at most one
    stderr line: never an internal error or a traceback."""
    code, out, err = inspect(data)
    assert code in (0, 2), err
    assert _printable(out) and len(err.splitlines()) == (1 if code == 2 else 0)


_URLSAFE = st.binary(min_size=24, max_size=64).map(
    lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode())


@settings(max_examples=150, deadline=None)
@given(secret=_URLSAFE, claims=st.dictionaries(st.text(max_size=8), st.text(max_size=8),
                                               max_size=4),
       shape=st.sampled_from(["bare", "bearer", "header", "document", "jws", "jwe",
                              "dotted"]), as_json=st.booleans())
def test_inspect_never_prints_the_token(secret: str, claims: dict[str, str], shape: str,
                                        as_json: bool) -> None:
    """No 16-character run of a high-entropy token (or signature, or JWE ciphertext)
    appears on stdout or stderr, whatever shape it is given in and whatever claims come
    with it."""
    token = {"jws": jws({"alg": "RS256"}, claims, secret),
             "jwe": f"{jwt_part({'alg': 'dir', 'enc': 'A128GCM'})}..aXY.{secret}.dGFn",
             "dotted": f"{secret}.{secret}.{secret}"}.get(shape, secret)
    stdin = {"bearer": f"Bearer {token}", "header": f"Authorization: DPoP {token}",
             "document": json.dumps({"access_token": token, "token_type": "Bearer"}),
             }.get(shape, token)
    code, out, err = inspect(stdin, *(["--json"] if as_json else []))
    assert code == 0, err
    assert token not in out + err
    for start in range(len(secret) - 15):
        assert secret[start:start + 16] not in out + err


def test_inspect_end_to_end_reads_what_token_prints(server: OAuthTestServer) -> None:
    """The real console process: `token --json | inspect` describes the issued (opaque)
    token with its token_type and scope, and a JWT on stdin is shown not verified; the
    tokens never reach its output."""
    fetched = run("token", "--json", "--scope", "read", env=base_env(server))
    assert fetched.returncode == 0, fetched.stderr
    issued = server.access_tokens_issued[-1]
    result = run("inspect", stdin=fetched.stdout)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("opaque token (not a JWT)")
    assert f"fingerprint: {short_print(issued)} " in result.stdout
    assert 'token_type "Bearer", scope "read"' in result.stdout
    assert issued not in result.stdout + result.stderr
    token = jws({"alg": "ES256", "typ": "at+jwt"}, {"sub": "svc", "exp": 2_000_000_000})
    result = run("inspect", stdin=token + "\n")
    assert result.returncode == 0 and result.stderr == ""
    assert "NOT VERIFIED" in result.stdout and "2033-05-18T03:33:20+00:00" in result.stdout
    assert token not in result.stdout and SIGNATURE not in result.stdout
