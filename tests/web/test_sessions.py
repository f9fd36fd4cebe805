"""Login sessions, the login rate limit and ``serve --port 0`` (a fake clock: no sleeping)."""

from __future__ import annotations

import re
import socket

import pytest

TOKEN = "s3cret-token"


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(tmp_path, random_model_dir, clock):
    """A client of an app with a token, timed by ``clock``."""
    from fastapi.testclient import TestClient

    from exprsim.models.embedder import load_model
    from exprsim.web import ServeConfig, create_app

    cfg = ServeConfig(db=str(tmp_path / "faces.db"), token=TOKEN)
    app = create_app(cfg, embedder=load_model(str(random_model_dir)), clock=clock)
    return TestClient(app, raise_server_exceptions=False)


def _login(c, token: str = TOKEN):
    return c.post("/login", data={"token": token}, follow_redirects=False)


def test_login_cookie_names_a_session_not_the_token_and_logout_ends_it(client):
    from exprsim.web.app import COOKIE

    r = _login(client)
    assert r.status_code == 303 and r.headers["location"] == "/"
    header = r.headers["set-cookie"]
    session = r.cookies[COOKIE]
    assert TOKEN not in header and session != TOKEN and len(session) >= 40
    assert "httponly" in header.lower() and "samesite=strict" in header.lower()
    assert client.get("/api/health").status_code == 200  # the cookie rides along
    assert client.get("/", follow_redirects=False).status_code == 200

    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert COOKIE in r.headers["set-cookie"] and "max-age=0" in r.headers["set-cookie"].lower()
    assert client.get("/api/health").status_code == 401  # the browser dropped it
    client.cookies.clear()
    client.cookies.set(COOKIE, session)  # the ended session, sent again
    assert client.get("/api/health").status_code == 401
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    # logging out without a session is no error; the bearer token still works
    assert client.post("/logout", follow_redirects=False).status_code == 303
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/health", headers=bearer).status_code == 200
    assert _login(client).cookies[COOKIE] != session  # each login, its own session


def test_a_cookie_holding_the_token_itself_is_refused(client):
    from exprsim.web.app import COOKIE

    for name in (COOKIE, "exprsim_token"):  # the new name, and the old one
        client.cookies.clear()
        client.cookies.set(name, TOKEN)
        assert client.get("/api/health").status_code == 401, name
        r = client.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", name


def test_sessions_expire_when_idle(client, clock):
    assert _login(client).status_code == 303
    clock.advance(11 * 3600)
    assert client.get("/api/health").status_code == 200  # used: idle time starts again
    clock.advance(11 * 3600)
    assert client.get("/api/health").status_code == 200
    clock.advance(12 * 3600 + 1)
    assert client.get("/api/health").status_code == 401


def test_login_rate_limit_refuses_even_the_right_token_until_the_window_passes(client, clock):
    for _ in range(5):
        r = _login(client, "wrong")
        assert r.status_code == 401 and "wrong token" in r.text
    r = _login(client)  # the right token, too late
    assert r.status_code == 429 and "set-cookie" not in r.headers
    assert r.headers["retry-after"] == "60"
    assert "Too many failed attempts" in r.text and r.text.startswith("<!DOCTYPE html>")
    assert client.get("/api/health").status_code == 401
    clock.advance(30)
    r = _login(client)
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    clock.advance(31)  # 61 s after the failures
    r = _login(client)
    assert r.status_code == 303
    assert client.get("/api/health").status_code == 200


def test_a_successful_login_does_not_reset_the_failures(client):
    # round 26: a right token in between cleared the count (4 wrong, 1 right, 4 wrong, ...:
    # unlimited guesses); the failures now leave the window on their own
    for _ in range(4):
        assert _login(client, "wrong").status_code == 401
    assert _login(client).status_code == 303
    assert _login(client, "wrong").status_code == 401  # the fifth within the window
    assert _login(client).status_code == 429


def test_login_limiter_window_slides_and_clients_are_apart():
    from exprsim.web.sessions import LoginLimiter

    clock = FakeClock()
    limiter = LoginLimiter(max_failures=5, window_s=60, clock=clock)
    for at in (0, 20, 40, 50, 55):
        clock.now = 1000.0 + at
        assert limiter.attempt("a", False) == 0
    clock.now = 1058.0
    assert limiter.attempt("a", True) == 2  # until the failure at 0 leaves the window
    assert limiter.attempt("b", False) == 0  # another client is not held back
    clock.now = 1060.5
    assert limiter.attempt("a", False) == 0  # one place free: a failure again
    assert limiter.attempt("a", True) == 20  # now the one at 20 must leave first
    clock.now = 1080.0
    assert limiter.attempt("a", True) == 0


def test_login_limiter_memory_is_bounded():
    from exprsim.web.sessions import LoginLimiter

    clock = FakeClock()
    limiter = LoginLimiter(max_failures=2, window_s=60, max_clients=3, clock=clock)
    for _ in range(2):
        limiter.attempt("first", False)
    assert limiter.attempt("first", True) > 0
    for name in ("b", "c", "d"):
        clock.advance(1)
        limiter.attempt(name, False)
    assert len(limiter) == 3  # the oldest client was forgotten
    assert limiter.attempt("first", True) == 0
    clock.advance(61)
    limiter.attempt("e", False)
    assert len(limiter) == 1  # clients whose failures left the window are forgotten


def test_session_store_evicts_beyond_its_cap_and_expires_idle_sessions():
    from exprsim.web.sessions import SessionStore

    clock = FakeClock()
    store = SessionStore(idle_s=10, max_sessions=3, clock=clock)
    a, b, c = store.create(), store.create(), store.create()
    assert len({a, b, c}) == 3 and all(len(s) >= 40 for s in (a, b, c))
    assert store.touch(a)  # a is now the most recently used
    d = store.create()
    assert len(store) == 3
    assert not store.touch(b)  # the least recently used went
    assert store.touch(a) and store.touch(c) and store.touch(d)
    assert not store.touch("") and not store.touch("nope")

    clock.advance(9)
    assert store.touch(a)
    clock.advance(9)
    assert store.touch(a) and not store.touch(c)  # c idle 18 s, a 9 s
    store.drop(a)
    assert not store.touch(a)
    store.drop("never issued")  # no error
    clock.advance(11)
    store.create()
    assert len(store) == 1  # the idle ones are forgotten, not only refused


def test_serve_port_0_prints_the_port_it_serves(tmp_path, capsys, monkeypatch, random_model_dir):
    import uvicorn

    from exprsim.cli import main

    monkeypatch.delenv("EXPRSIM_TOKEN", raising=False)
    handed: list[socket.socket] = []
    names: list[tuple[str, int]] = []

    def serving(self, sockets=None):  # stands in for the server: nothing is served
        assert sockets is not None and len(sockets) == 1
        handed.extend(sockets)
        names.append(sockets[0].getsockname())
        # already listening: a client reaches the printed port while the server starts
        with socket.create_connection(sockets[0].getsockname(), timeout=5):
            pass

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)  # (before: served on port 0)
    monkeypatch.setattr(uvicorn.Server, "run", serving)
    db = str(tmp_path / "s.db")
    assert main(["serve", "--db", db, "--port", "0", "--model", str(random_model_dir)]) == 0
    out = capsys.readouterr().out
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", out)
    assert found, out
    port = int(found.group(1))
    assert port != 0 and names == [("127.0.0.1", port)]
    assert handed[0].fileno() == -1  # closed once the server is done


def test_pages_have_a_logout_button_only_with_a_token(client, tmp_path, random_model_dir):
    from fastapi.testclient import TestClient

    from exprsim.models.embedder import load_model
    from exprsim.web import ServeConfig, create_app

    _login(client)
    for path in ("/", "/summary", "/tags", "/video"):
        page = client.get(path).text
        assert "action='/logout'" in page and page.count("Log out") == 1, path
    open_app = create_app(
        ServeConfig(db=str(tmp_path / "open.db")), embedder=load_model(str(random_model_dir))
    )
    assert "/logout" not in TestClient(open_app).get("/").text


def test_wrong_bearer_tokens_count_as_failed_logins(client, clock):
    """Guessing through ``Authorization: Bearer`` is limited like the login form (it was
    unlimited: only the form counted), and a locked client is refused the right token too."""
    wrong = {"Authorization": "Bearer nope"}
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/health", headers=right).status_code == 200
    codes = [client.get("/api/health", headers=wrong).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    r = client.get("/api/health", headers=right)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _login(client).status_code == 429  # the form shares the count
    clock.advance(61)
    assert client.get("/api/health", headers=right).status_code == 200


def test_serve_ignores_forwarded_headers(tmp_path, monkeypatch, capsys):
    """uvicorn's proxy headers are off: a loopback client cannot pick its own address
    (X-Forwarded-For) for the login rate limit."""
    import uvicorn

    from exprsim.cli import main

    seen = {}

    def fake_run(self, sockets=None):
        seen["proxy_headers"] = self.config.proxy_headers

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setattr("exprsim.web.create_app", lambda *a, **k: object())
    rc = main(["-q", "serve", "--db", str(tmp_path / "f.db"), "--port", "0"])
    assert rc == 0 and seen == {"proxy_headers": False}


def _app(tmp_path, random_model_dir, clock, **kw):
    from exprsim.models.embedder import load_model
    from exprsim.web import ServeConfig, create_app

    cfg = ServeConfig(db=str(tmp_path / "faces.db"), token=TOKEN, **kw)
    return create_app(cfg, embedder=load_model(str(random_model_dir)), clock=clock)


def test_the_cookie_is_secure_when_asked_or_over_https(tmp_path, random_model_dir, clock):
    from fastapi.testclient import TestClient

    plain = _app(tmp_path, random_model_dir, clock)
    assert "secure" not in _login(TestClient(plain)).headers["set-cookie"].lower()
    https = TestClient(plain, base_url="https://testserver")
    assert "secure" in _login(https).headers["set-cookie"].lower()  # had no Secure flag
    proxied = TestClient(_app(tmp_path, random_model_dir, clock, secure_cookie=True))
    r = _login(proxied)
    assert "secure" in r.headers["set-cookie"].lower()
    out = proxied.post("/logout", follow_redirects=False)
    assert "secure" in out.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    ("hosts", "shared"),
    [
        (["2001:db8:1:2::1", "2001:db8:1:2:ffff::7"], True),  # one /64: one client
        (["2001:db8:1:2::1", "2001:db8:1:3::1"], False),
        (["10.0.0.1", "::ffff:10.0.0.1"], True),  # IPv4-mapped IPv6 is the IPv4 address
        (["10.0.0.1", "10.0.0.2"], False),
    ],
)
def test_login_limit_counts_an_ipv6_slash_64_as_one_client(
    tmp_path, random_model_dir, clock, hosts, shared
):
    """Fresh IPv6 addresses from one /64 got 5 guesses each (one subscriber holds 2**64)."""
    from fastapi.testclient import TestClient

    app = _app(tmp_path, random_model_dir, clock)
    first, second = (TestClient(app, client=(h, 5000)) for h in hosts)
    assert [_login(first, "wrong").status_code for _ in range(5)] == [401] * 5
    assert _login(second, "wrong").status_code == (429 if shared else 401)


def test_serve_secure_cookie_flag_reaches_the_app(tmp_path, monkeypatch):
    import uvicorn

    from exprsim.cli import main

    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    monkeypatch.setattr("exprsim.web.create_app", lambda cfg, **k: seen.setdefault("cfg", cfg))
    db = str(tmp_path / "f.db")
    assert main(["-q", "serve", "--db", db, "--port", "0", "--secure-cookie"]) == 0
    assert seen.pop("cfg").secure_cookie
    assert main(["-q", "serve", "--db", db, "--port", "0"]) == 0
    assert not seen["cfg"].secure_cookie


def test_an_empty_token_gets_the_login_page_back(client):
    r = client.post("/login", data={"token": ""}, follow_redirects=False)
    assert r.status_code == 401 and "wrong token" in r.text  # was a raw JSON 422
    assert "required" in client.get("/login").text


def test_a_session_ends_seven_days_after_its_login_however_used(client, clock):
    """Round 28 (web security audit): a session used every few hours lived for good."""
    from exprsim.web.sessions import SESSION_MAX_S

    _login(client)
    used = 0.0
    while used + 6 * 3600 < SESSION_MAX_S:
        clock.advance(6 * 3600)
        used += 6 * 3600
        assert client.get("/api/health").status_code == 200
    clock.advance(SESSION_MAX_S - used + 1)
    assert client.get("/api/health").status_code == 401  # was 200


def test_a_login_again_ends_the_browsers_earlier_session(client):
    """Round 28 (web security audit): the first session stayed alive beside the second."""
    from exprsim.web.app import COOKIE

    first = _login(client).cookies[COOKIE]
    second = _login(client).cookies[COOKIE]  # the browser sends the first with it
    assert second != first
    client.cookies.clear()
    client.cookies.set(COOKIE, first)
    assert client.get("/api/health").status_code == 401  # was 200
    client.cookies.clear()
    client.cookies.set(COOKIE, second)
    assert client.get("/api/health").status_code == 200
