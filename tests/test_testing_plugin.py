"""The pytest plugin: fixtures only when asked for, and a user's test written with them."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TEST = '''
import requests

def test_my_api_client(oauth_server, oauth_auth):
    session = requests.Session()
    session.auth = oauth_auth
    assert session.get(oauth_server.resource_url).status_code == 200
    oauth_server.revoke_all()
    assert session.get(oauth_server.resource_url).status_code == 200
    assert oauth_server.token_requests == 2
'''

INJECTED_FAILURE = '''
    oauth_server.queue_response(503, "down", count=5)
    oauth_server.expire_all()
    oauth_auth.invalidate()
    try:
        session.get(oauth_server.resource_url)
    except Exception as exc:
        assert "503" in str(exc)
    else:
        raise AssertionError("the injected failure must surface")
'''


def test_fixtures_work_when_the_plugin_is_enabled(pytester: pytest.Pytester) -> None:
    """-p requests_oauthcc.testing gives oauth_server and oauth_auth to a user's tests, and
    a failure queued at the server surfaces through the auth's retries.

    The other ways of enabling the plugin below run the user's test without the queued
    failure: it is the same server either way, and the auth's default retries wait ~2.6 s
    (0.5, 1 and 2 s backoff, jittered) before it surfaces."""
    pytester.makepyfile(USER_TEST + INJECTED_FAILURE)
    result = pytester.runpytest_subprocess("-p", "requests_oauthcc.testing")
    result.assert_outcomes(passed=1)


def test_pytest_plugins_variable_enables_it_too(pytester: pytest.Pytester) -> None:
    """pytest_plugins = ["requests_oauthcc.testing"] in a conftest.py works the same."""
    pytester.makeconftest('pytest_plugins = ["requests_oauthcc.testing"]')
    pytester.makepyfile(USER_TEST)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_nothing_is_registered_without_asking(pytester: pytest.Pytester) -> None:
    """Installing the library does not add fixtures to other projects' test runs."""
    pytester.makepyfile("def test_x(oauth_server):\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'oauth_server' not found*"])


def test_fixtures_work_behind_a_proxy_set_in_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user behind a corporate proxy (HTTP_PROXY exported) gets working fixtures: the
    server's host is exempted for the test (every oauth_auth test errored in setup)."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("-p", "requests_oauthcc.testing")
    result.assert_outcomes(passed=1)
