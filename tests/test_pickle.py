"""ClientCredentialsAuth pickles and copies (issue #10, item 7): built again from its
options, with its own lock, token Session and no token; real process pools included."""

from __future__ import annotations

import copy
import multiprocessing
import os
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import requests

from requests_oauthcc import ClientCredentialsAuth, ConfigurationError, SecretFile
from requests_oauthcc._jwt import SigningKey, load_signing_key
from requests_oauthcc.testing import OAuthTestServer

from .conftest import CLIENT_ID, CLIENT_SECRET
from .keys import KeyPair, ec_pair, ed25519_pair, rsa_pair
from .pickle_workers import call_api

MakeAuth = Callable[..., ClientCredentialsAuth]


def _secret() -> str:
    return CLIENT_SECRET


def test_pickled_auth_is_rebuilt_without_its_token(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """A pickled auth comes back configured alike, with no token, its own token Session
    and lock, and fetches its own token (on 0.2.0 pickle.dumps raised)."""
    auth = make_auth(scope="read write", allowed_origins=[server.base_url])
    token = auth.fetch_token()
    data = pickle.dumps(auth)
    assert token.access_token.encode() not in data
    clone = pickle.loads(data)
    assert isinstance(clone, ClientCredentialsAuth) and repr(clone) == repr(auth)
    assert getattr(clone, "token") is None  # noqa: B009 - a call: narrowing must not stick
    assert clone._token_session is not auth._token_session
    assert clone._holder is not auth._holder and clone._holder._lock is not auth._holder._lock
    assert requests.get(server.resource_url, auth=clone, timeout=10).status_code == 200
    assert clone.token is not None and clone.token.access_token != token.access_token
    assert server.token_requests == 2
    assert auth.token is token


def test_deepcopy_is_an_independent_auth(make_auth: MakeAuth, server: OAuthTestServer) -> None:
    """copy.deepcopy gives an auth with its own token holder, even with a callable secret
    that cannot be pickled (a lambda); invalidating one leaves the other alone."""
    auth = make_auth(client_secret=lambda: CLIENT_SECRET)
    auth.fetch_token()
    clone = copy.deepcopy(auth)
    assert getattr(clone, "token") is None  # noqa: B009 - a call: narrowing must not stick
    assert clone._holder is not auth._holder
    clone.fetch_token()
    auth.invalidate()
    assert clone.token is not None
    assert getattr(auth, "token") is None  # noqa: B009 - a call: narrowing must not stick
    assert server.token_requests == 2


def test_shallow_copy_shares_the_given_session(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """copy.copy keeps the same session= object (and cache=), with a token of its own."""
    token_session = requests.Session()
    auth = make_auth(session=token_session)
    auth.fetch_token()
    clone = copy.copy(auth)
    assert clone._token_session is token_session and clone.token is None
    deep = copy.deepcopy(auth)
    assert deep._token_session is not token_session


def test_unpicklable_secret_callable_is_a_clear_error(make_auth: MakeAuth) -> None:
    """A lambda secret cannot cross to another process: pickling says so, typed, and
    names what to use instead; the message holds no secret."""
    auth = make_auth(client_secret=lambda: CLIENT_SECRET)
    with pytest.raises(ConfigurationError, match=r"client_secret.*SecretFile") as caught:
        pickle.dumps(auth)
    assert CLIENT_SECRET not in str(caught.value)


def test_secret_file_and_module_function_secrets_pickle(
    make_auth: MakeAuth, server: OAuthTestServer, tmp_path: Path
) -> None:
    """SecretFile (re-read in the copy) and module-level functions pickle and work."""
    path = tmp_path / "secret"
    path.write_text(CLIENT_SECRET + "\n")
    for secret in (SecretFile(path), _secret):
        clone = pickle.loads(pickle.dumps(make_auth(client_secret=secret)))
        assert clone.fetch_token().access_token
    assert server.token_requests == 2


def test_one_shot_option_iterables_survive_copies(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """Generators given as scope, resource or extra_params values are kept, not consumed
    away: the copy sends the same form."""
    auth = make_auth(scope=(s for s in ["read", "write"]),
                     resource=(r for r in ["https://api.example.com/"]),
                     extra_params={"tenant": (t for t in ["a", "b"])})
    clone = pickle.loads(pickle.dumps(auth))
    auth.fetch_token()
    clone.fetch_token()
    first, second = server.token_log
    assert first.form == second.form
    assert second.form["scope"] == ["read write"] and second.form["tenant"] == ["a", "b"]


def test_options_in_a_traceback_show_no_secret(make_auth: MakeAuth) -> None:
    """The options kept for copies show their names only, in repr (frame locals)."""
    auth = make_auth()
    assert CLIENT_SECRET not in repr(auth._options)
    assert CLIENT_SECRET not in repr(auth.__getstate__())


@pytest.mark.parametrize("pair", [rsa_pair, ec_pair, ed25519_pair], ids=["rsa", "ec", "ed25519"])
def test_private_key_jwt_auth_pickles(pair: Callable[[], KeyPair], tmp_path: Path) -> None:
    """A private_key_jwt auth pickles: given as text, with its loaded key (PKCS #8 DER
    inside; cryptography keys do not pickle); given as a path, with the path only, so the
    copy follows the file (rotation) and the pickle holds no key. The copies' assertions
    are accepted."""
    keys = pair()
    path = tmp_path / "key.pem"
    path.write_text(keys.private_pem)
    with OAuthTestServer({}, client_keys={CLIENT_ID: keys.public_pem}) as server:
        by_text = ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=keys.private_pem,
                                        private_key_id="k1", retries=0)
        by_path = ClientCredentialsAuth(server.token_url, CLIENT_ID, private_key=path,
                                        private_key_id="k1", retries=0)
        from_text, from_path = pickle.dumps(by_text), pickle.dumps(by_path)
        assert repr(pickle.loads(from_path)._options["private_key"]).startswith("PrivateKey(file")
        assert repr(pickle.loads(from_text)._options["private_key"]).startswith("PrivateKey(loaded")
        for data in (from_text, from_path):
            clone = pickle.loads(data)
            assert clone.fetch_token().access_token
            assert server.token_log[-1].auth_method == "private_key_jwt"
        path.unlink()
        assert pickle.loads(from_text).fetch_token().access_token


def test_signing_key_pickles_and_deep_copies() -> None:
    """SigningKey round-trips through pickle and deepcopy with its alg, kid and key."""
    keys = ec_pair()
    key = load_signing_key(keys.private_pem, "kid-1")
    for clone in (pickle.loads(pickle.dumps(key)), copy.deepcopy(key)):
        assert isinstance(clone, SigningKey)
        assert (clone.alg, clone.kid) == (key.alg, key.kid)
        assert clone.key.private_numbers() == key.key.private_numbers()
    hmac = SigningKey(b"secret-bytes", "HS256")
    assert pickle.loads(pickle.dumps(hmac)) == hmac


def test_make_session_pickles_with_its_proxy_check(
    make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """The Session from make_session pickles; its adapter still refers to its auth."""
    api = make_auth().make_session()
    clone = pickle.loads(pickle.dumps(api))
    adapter = clone.get_adapter("http://127.0.0.1/")
    check = getattr(adapter, "check", None)
    assert getattr(check, "__self__", None) is clone.auth
    assert clone.get(server.resource_url, timeout=10).status_code == 200


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_session_with_the_auth_goes_to_a_process_pool(
    method: str, make_auth: MakeAuth, server: OAuthTestServer
) -> None:
    """A Session carrying the auth is sent to a real spawn / forkserver ProcessPoolExecutor;
    the worker gets the auth without the parent's token and fetches its own."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    auth = make_auth()
    with requests.Session() as session:
        session.auth = auth
        assert session.get(server.resource_url, timeout=10).status_code == 200
        parent_token = auth.token
        assert parent_token is not None
        context = multiprocessing.get_context(method)
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            status, worker_token, arrived_empty, pid = pool.submit(
                call_api, session, server.resource_url).result(timeout=120)
    assert pid != os.getpid()
    assert status == 200 and arrived_empty
    assert worker_token is not None and worker_token != parent_token.access_token
    assert server.token_requests == 2
