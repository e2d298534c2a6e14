"""The command line, run as a real process against the local server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from requests_oauthcc.cli import _OPTIONS
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
