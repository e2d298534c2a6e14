"""The package surface: exports, typing marker, import weight, error hierarchy, demo."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import requests

import requests_oauthcc
from requests_oauthcc import errors

ROOT = Path(__file__).resolve().parent.parent


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ names every public attribute (lazy ones included) and nothing else."""
    public = {
        name for name in dir(requests_oauthcc)
        if not name.startswith("_")
        and not isinstance(getattr(requests_oauthcc, name), types.ModuleType)
    } - {"TYPE_CHECKING", "Any"}
    assert set(requests_oauthcc.__all__) - {"__version__"} == public
    for name in requests_oauthcc.__all__:
        assert hasattr(requests_oauthcc, name)
    assert not hasattr(requests_oauthcc, "NoSuchThing")


def test_py_typed_is_shipped() -> None:
    """The PEP 561 marker sits in the package."""
    assert (Path(requests_oauthcc.__file__).parent / "py.typed").exists()


def test_import_stays_light() -> None:
    """Importing the package loads no JWT, crypto or Redis code, and no test server."""
    code = (
        "import sys, json, requests_oauthcc; "
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    modules = set(json.loads(out.stdout))
    for heavy in ("jwt", "cryptography", "redis", "requests_oauthcc.testing", "http.server",
                  "requests_oauthcc.file_cache", "requests_oauthcc.redis_cache",
                  "requests_oauthcc.shared", "requests_oauthcc.discovery",
                  "requests_oauthcc.platforms", "requests_oauthcc._github_oidc"):
        assert heavy not in modules


def test_import_adds_no_module_but_its_own_to_requests() -> None:
    """`from requests_oauthcc import ClientCredentialsAuth` loads no module that `import
    requests` does not load, but the package's (no dataclasses, inspect, JWT, ...): what it
    adds to the import time users pay is the package's own code (issue #14)."""
    code = (
        "import sys, json, requests; before = set(sys.modules); "
        "from requests_oauthcc import ClientCredentialsAuth; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    added = json.loads(out.stdout)
    assert "requests_oauthcc.auth" in added
    assert [m for m in added if m.split(".")[0] != "requests_oauthcc"] == []


def test_every_error_is_an_oauth_error_and_a_requests_exception() -> None:
    """All exported exceptions derive from OAuthError, itself a RequestException."""
    assert issubclass(errors.OAuthError, requests.RequestException)
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.OAuthError), name


def test_unknown_error_codes_fall_back_to_token_error() -> None:
    """token_error_class maps known codes and falls back to the base class."""
    assert errors.token_error_class("invalid_scope") is errors.InvalidScopeError
    assert errors.token_error_class("slow_down") is errors.TokenError


def test_demo_runs_and_shows_the_main_job() -> None:
    """`python -m requests_oauthcc demo` exits 0 and shows fetch, reuse, refresh and 401."""
    result = subprocess.run(
        [sys.executable, "-m", "requests_oauthcc", "demo"], capture_output=True, text=True,
        timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "no token requested by the constructor" in out
    assert out.count("fetched token for client_id=demo-client") == 3
    assert "statuses seen: [401, 200]" in out
    assert "demo finished: all checks passed" in out
    assert "demo-secret" not in out
