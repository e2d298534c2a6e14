"""The command line, run as a real process against the local server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from requests_oauthcc.cli import _OPTIONS
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET


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
