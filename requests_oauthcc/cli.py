"""The command line: ``requests-oauthcc token|request|inspect|demo`` (also ``python -m
requests_oauthcc``).

Exit codes: 0 ok, 1 an unexpected internal error (a bug: please report it), 2 usage or
configuration error, 3 the token endpoint refused (RFC 6749 error shown with its
description), 4 network or TLS failure, 130 interrupted. ``inspect`` exits 0 for any token
it read (opaque or unreadable ones included) and 2 when stdin holds no token. Errors go to
stderr in one line; no traceback is ever printed (it could show request bodies).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import requests

from . import __version__
from ._files import shown_path
from .auth import ClientCredentialsAuth
from .errors import (
    ConfigurationError,
    DiscoveryError,
    InsecureTransportError,
    OAuthError,
    TokenEndpointConnectionError,
)
from .redaction import Secret, server_text

if TYPE_CHECKING:
    from .events import Event

__all__ = ["main"]

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_REFUSED, EXIT_NETWORK = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
PROG = "requests-oauthcc"

_OPTIONS: list[tuple[str, str | None, dict[str, Any]]] = [
    ("--token-url", "OAUTH_TOKEN_URL", {"help": "token endpoint URL"}),
    ("--issuer", "OAUTH_ISSUER", {"help": "issuer URL; the token endpoint is discovered"}),
    ("--client-id", "OAUTH_CLIENT_ID", {"help": "client identifier"}),
    ("--client-secret-file", "OAUTH_CLIENT_SECRET_FILE",
     {"help": "file holding the client secret"}),
    ("--client-secret-stdin", None,
     {"action": "store_true", "help": "read the client secret from the first line of stdin"}),
    ("--client-secret", "OAUTH_CLIENT_SECRET",
     {"help": "the client secret itself; as a flag it is visible in `ps`, so it is refused "
              "unless --allow-secret-in-argv is given (prefer the variable or a file)"}),
    ("--allow-secret-in-argv", None,
     {"action": "store_true", "help": "accept --client-secret on the command line"}),
    ("--private-key-file", "OAUTH_PRIVATE_KEY_FILE",
     {"help": "PEM private key for private_key_jwt"}),
    ("--client-assertion-file", "OAUTH_CLIENT_ASSERTION_FILE",
     {"help": "file holding a client assertion made by the platform (a Kubernetes "
              "service-account token, an Entra ID federated token), re-read when it changes"}),
    ("--scope", "OAUTH_SCOPE", {"help": "requested scope (space-separated)"}),
    ("--audience", "OAUTH_AUDIENCE", {"help": "audience parameter (Auth0, Okta, ...)"}),
    ("--resource", "OAUTH_RESOURCE",
     {"action": "append", "help": "RFC 8707 resource indicator; repeatable (variable: "
                                  "space-separated)"}),
    ("--auth-method", "OAUTH_AUTH_METHOD",
     {"help": "client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt, "
              "tls_client_auth or self_signed_tls_client_auth"}),
    ("--client-id-in-body", "OAUTH_CLIENT_ID_IN_BODY",
     {"action": "store_true", "help": "with client_secret_basic, send client_id in the form "
                                      "too, as some servers require (variable: true/false)"}),
    ("--refresh-on", "OAUTH_REFRESH_ON",
     {"action": "append", "type": int, "metavar": "STATUS",
      "help": "an API status meaning 'new token, retry once' besides 401, e.g. 403; "
              "repeatable (variable: space-separated)"}),
    ("--dpop-key", "OAUTH_DPOP_KEY_FILE",
     {"metavar": "FILE", "help": "DPoP (RFC 9449): bind the tokens to this private key, a "
                                 "PEM file or a JSON file holding a private JWK; every "
                                 "request then carries a proof signed with it"}),
    ("--dpop-alg", "OAUTH_DPOP_ALG",
     {"metavar": "ALG", "help": "the algorithm of the DPoP proofs, one the key can sign, "
                                "e.g. PS256 for an RSA key (default: the JWK's alg, else "
                                "RS256, the EC curve's, or EdDSA)"}),
    ("--cert", None, {"help": "client certificate (PEM) for mTLS"}),
    ("--key", None, {"help": "private key (PEM) of --cert"}),
    ("--ca-bundle", None, {"help": "CA bundle to verify the servers with"}),
    ("--timeout", None, {"type": float, "default": 10.0,
                         "help": "seconds bounding each token request whole (default 10)"}),
    ("--insecure-allow-http", None,
     {"action": "store_true", "help": "allow plain http to non-loopback hosts (test rigs)"}),
]


def _add_auth_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("authorization (flags win over OAUTH_* variables)")
    for flag, env, spec in _OPTIONS:
        help_text = spec["help"] + (f" [env: {env}]" if env else "")
        group.add_argument(flag, **{**spec, "help": help_text})


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one stderr line (and exit 2), as every error is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {server_text(message, limit=500)} "
                              "(see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=(
        "OAuth 2.0 Client Credentials for requests. Exit codes: 0 ok, 1 internal error, "
        "2 usage, 3 token endpoint refused, 4 network/TLS failure, 130 interrupted."))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    token = commands.add_parser("token", help="fetch a token and print it",
                                description="Fetch a token and print it (bare, for "
                                            "curl -H \"Authorization: Bearer $(...)\"). A "
                                            "DPoP token (--dpop-key) is sent as "
                                            "\"Authorization: DPoP\" with a new proof "
                                            "on each request: use `request` for those.")
    token.add_argument("--json", action="store_true",
                       help="print the whole token response (token_type says Bearer or "
                            "DPoP) plus the computed expires_at")
    token.add_argument("--verbose", "-v", action="store_true",
                       help="show the token fetch, its events and the DPoP key's thumbprint "
                            "on stderr")
    _add_auth_options(token)
    request = commands.add_parser("request", help="make one API call with the auth mounted",
                                  description="Make one call and print the status and body.")
    request.add_argument("method", type=_method, help="HTTP method, e.g. GET")
    request.add_argument("url", help="the API URL")
    request.add_argument("--data", help="request body; @FILE reads it from a file")
    request.add_argument("--header", "-H", action="append", default=[],
                         help="extra header 'Name: value'; repeatable")
    request.add_argument("--verbose", "-v", action="store_true",
                         help="show the token fetch, the 401-retry decisions, their events "
                              "and the DPoP key's thumbprint on stderr")
    _add_auth_options(request)
    inspect = commands.add_parser(
        "inspect", help="describe a token read from stdin, without verifying it",
        description="Read a token from stdin and describe it WITHOUT VERIFYING IT (no "
                    "signature, issuer or audience is checked: a forged token reads the "
                    "same): a JWT's header and claims, with exp as a date and seconds left, "
                    "iat/nbf (in the future: clock skew), aud, scope/scp, cnf (DPoP or "
                    "certificate binding), iss, sub, client_id; an encrypted JWT's header; "
                    "or that it is opaque. stdin holds one token, 'Bearer TOKEN', "
                    "'DPoP TOKEN', 'Authorization: Bearer TOKEN' or the JSON of `token "
                    "--json`, at most 64 KiB: `requests-oauthcc token | requests-oauthcc "
                    "inspect`. The token itself is never printed: a fingerprint (the first "
                    "12 hex digits of its SHA-256) names it. Text read from the token is "
                    "shown as JSON with non-ASCII and control characters escaped, strings "
                    "cut at 512 characters. Exit 0 for any token read, an opaque one or a "
                    "JWT that cannot be decoded (the reason is shown) included; 2 when "
                    "stdin is empty, too large, not UTF-8 or not one of the shapes above.")
    inspect.add_argument("--json", action="store_true",
                         help="print a JSON object (kind, fingerprint, length, header, "
                              "claims, summary, notes) instead of text")
    commands.add_parser("demo", help="run the main job against an embedded local server")
    return parser


class _UsageError(Exception):
    pass


def _method(value: str) -> str:
    """An HTTP method: a token (RFC 9110 §5.6.2), upper-cased."""
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an HTTP method (e.g. GET, POST)")
    return value.upper()


def _secret_option(args: argparse.Namespace, stdin: TextIO) -> dict[str, Any]:
    given = [args.client_secret is not None, bool(args.client_secret_file),
             args.client_secret_stdin]
    if sum(given) > 1:
        raise _UsageError("give only one of --client-secret, --client-secret-file and "
                          "--client-secret-stdin")
    if args.client_secret is not None:
        if not args.allow_secret_in_argv:
            raise _UsageError("--client-secret puts the secret where `ps` shows it; use "
                              "OAUTH_CLIENT_SECRET, --client-secret-file or "
                              "--client-secret-stdin (or add --allow-secret-in-argv)")
        return {"client_secret": Secret(args.client_secret)}
    if args.client_secret_stdin:
        secret = Secret(stdin.readline().strip())
        if not secret.reveal():
            raise _UsageError("--client-secret-stdin: stdin gave no secret")
        return {"client_secret": secret}
    if args.client_secret_file:
        from .sources import SecretFile

        return {"client_secret": SecretFile(args.client_secret_file)}
    return {}


def _dpop_option(args: argparse.Namespace) -> dict[str, Any]:
    """``dpop=`` when a flag names the key or its algorithm (flags win over variables; a
    variable not overridden still counts). Without the flags, from_env reads the variables."""
    if args.dpop_key is None and args.dpop_alg is None:
        return {}
    from .config import load_dpop_key

    if args.dpop_key is not None and not args.dpop_key.strip():
        raise _UsageError("--dpop-key is empty: give the path of a DPoP key file")
    key_file = args.dpop_key or os.environ.get("OAUTH_DPOP_KEY_FILE", "").strip()
    if not key_file:
        raise _UsageError("--dpop-alg needs a key: give --dpop-key FILE (or set "
                          "OAUTH_DPOP_KEY_FILE)")
    alg = args.dpop_alg or os.environ.get("OAUTH_DPOP_ALG", "").strip() or None
    return {"dpop": load_dpop_key(
        key_file, alg, source="--dpop-key" if args.dpop_key else "OAUTH_DPOP_KEY_FILE",
        alg_source="--dpop-alg" if args.dpop_alg else "OAUTH_DPOP_ALG")}


def _auth_from(args: argparse.Namespace, stdin: TextIO) -> ClientCredentialsAuth:
    options = _secret_option(args, stdin)
    options.update(_dpop_option(args))
    if args.token_url and args.issuer:
        raise _UsageError("give --token-url or --issuer, not both")
    if args.token_url:
        options["token_url"] = args.token_url
    elif args.issuer:
        from .discovery import Issuer

        options["token_url"] = Issuer(args.issuer)
    for name in ("client_id", "scope", "audience", "auth_method"):
        if getattr(args, name):
            options[name] = getattr(args, name)
    if args.private_key_file:
        options["private_key"] = args.private_key_file
    if args.client_assertion_file:
        options["client_assertion"] = Path(args.client_assertion_file)
    if args.client_id_in_body:
        options["client_id_in_body"] = True
    if args.refresh_on:
        options["refresh_on"] = {401, *args.refresh_on}
    if args.resource:
        options["resource"] = args.resource
    if args.cert:
        options["cert"] = (args.cert, args.key) if args.key else args.cert
    if args.ca_bundle:
        session = requests.Session()
        session.verify = args.ca_bundle
        options["session"] = session
    options["timeout"] = args.timeout
    options["insecure_allow_http"] = args.insecure_allow_http
    options["on_event"] = _print_event if args.verbose else None
    return ClientCredentialsAuth.from_env(**options)


def _print_event(event: Event) -> None:
    """With ``-v``: each event on stderr (events hold no secret and no token)."""
    print(f"* event: {event!r}", file=sys.stderr)


def _token(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    auth = _auth_from(args, stdin)
    token = auth.fetch_token()
    if not args.json:
        print(token.access_token, file=out)
        if token.dpop:  # curl -H "Authorization: Bearer ..." would be refused: say why
            print(f"{PROG}: note: a DPoP-bound token (token_type DPoP): each request must "
                  "send it as 'Authorization: DPoP ...' with a new proof signed by the key; "
                  f"`{PROG} request` does both", file=sys.stderr)
        return EXIT_OK
    document = dict(token.raw)
    document.setdefault("token_type", token.token_type)
    remaining = token.expires_in(time.monotonic())
    if remaining is not None:
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=remaining)
        document["expires_at"] = expires.isoformat(timespec="seconds")
    print(json.dumps(document, indent=2, sort_keys=True), file=out)
    return EXIT_OK


def _request(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise _UsageError(f"--header {header!r} is not 'Name: value'")
        headers[name.strip()] = value.strip()
    data: bytes | None = None
    if args.data is not None:
        if args.data.startswith("@"):
            with open(args.data[1:], "rb") as file:
                data = file.read()
        else:
            data = args.data.encode()
    with _auth_from(args, stdin).make_session() as session:
        if args.ca_bundle:
            session.verify = args.ca_bundle
        response = session.request(args.method, args.url, data=data, headers=headers,
                                   timeout=args.timeout)
    for earlier in response.history:
        if args.verbose:  # the standard phrase: the server's may hold terminal escapes or
            # echo the token it refused (which the request no longer names: not redactable)
            print(f"* earlier answer: {earlier.status_code} {_phrase(earlier.status_code)}",
                  file=sys.stderr)
    print(f"{response.status_code} {response.reason}", file=out)
    print(response.text, file=out)
    return EXIT_OK


def _phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (RFC 9110 §15), or ``""``."""
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
        "token": _token, "request": _request, "inspect": _inspect, "demo": _demo,
    }
    package = logging.getLogger("requests_oauthcc")
    if getattr(args, "verbose", False):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("* %(name)s: %(message)s"))
        package.addHandler(handler)
        package.setLevel(logging.DEBUG)
    elif not package.handlers:  # without -v, retries logged at WARNING stay off stderr
        package.addHandler(logging.NullHandler())
    # With stdin closed (`<&-`) sys.stdin is None: read as empty, not an internal error.
    source = stdin or sys.stdin or io.StringIO()
    try:
        return commands[args.command](args, out or sys.stdout, source)
    except (_UsageError, OSError, requests.RequestException) as exc:
        message, code = _diagnose(exc)
    except KeyboardInterrupt:
        message, code = "interrupted", EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours: say what, never how (no traceback, no locals)
        message = f"unexpected {type(exc).__name__}; please report it with the command used"
        code = EXIT_INTERNAL
    print(f"{PROG}: error: {server_text(message, limit=500)}", file=sys.stderr)
    return code


def _inspect(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    from . import inspect_token

    if stdin.isatty():
        print(f"{PROG}: reading a token from stdin (Ctrl-D to end)", file=sys.stderr)
    try:
        token, response = inspect_token.token_from(inspect_token.read_input(stdin))
    except inspect_token.UnusableInput as exc:
        raise _UsageError(str(exc)) from None
    report = inspect_token.describe(token, now=time.time(), response=response)
    render = inspect_token.render_json if args.json else inspect_token.render_text
    print(render(report), file=out)
    return EXIT_OK


def _demo(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    from .demo import run

    return run()


def _diagnose(exc: BaseException) -> tuple[str, int]:
    """The one-line message and the exit code for an error."""
    if isinstance(exc, (_UsageError, ConfigurationError, InsecureTransportError)):
        text = str(exc).replace("insecure_allow_http=True", "--insecure-allow-http")
        hint = "; each variable has a matching flag (see --help)" if "must be set" in text \
            else ""
        return f"{text}{hint}", EXIT_USAGE
    if isinstance(exc, TokenEndpointConnectionError):
        return str(exc), EXIT_NETWORK
    if isinstance(exc, DiscoveryError):
        network = isinstance(exc.__cause__, requests.RequestException)
        return str(exc), EXIT_NETWORK if network else EXIT_REFUSED
    if isinstance(exc, OAuthError):
        return str(exc), EXIT_REFUSED
    if isinstance(exc, requests.RequestException):
        return f"{type(exc).__name__}: {exc}", EXIT_NETWORK
    assert isinstance(exc, OSError)
    named = shown_path(exc.filename) if exc.filename else "(no file named)"
    return f"{exc.strerror or type(exc).__name__}: {named}", EXIT_USAGE

