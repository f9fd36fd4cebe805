"""Round 28 (docs/robustness.md): the web app called from Python."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")


@pytest.mark.parametrize("name", ["fer2013new.csv", "fer2013.csv.gz"])
def test_create_app_refuses_a_data_sets_folder_as_its_own(make_client, tmp_path, name) -> None:
    from exprsim.errors import ArgumentError

    data = tmp_path / "FER"
    data.mkdir()
    (data / name).write_text("emotion,pixels,Usage\n")
    with pytest.raises(ArgumentError, match=f"data_dir {data}: holds {name}, a data set's"):
        make_client(data_dir=str(data))  # was: served, uploads among the data set's files
    assert sorted(p.name for p in data.iterdir()) == [name]  # nothing written there


def test_create_app_takes_a_folder_of_its_own(make_client, tmp_path) -> None:
    web = tmp_path / "web"
    client = make_client(data_dir=str(web))
    assert client.get("/").status_code == 200  # a folder without the data set's files


def _multipart(parts: list[tuple[bytes, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A multipart body of ``(Content-Disposition options, content)`` parts."""
    body = b"".join(
        b"--B\r\nContent-Disposition: form-data; " + options + b"\r\n\r\n" + content + b"\r\n"
        for options, content in parts
    )
    return body + b"--B--\r\n", {"content-type": "multipart/form-data; boundary=B"}


@pytest.mark.parametrize("counted", [False, True])
def test_a_large_multipart_body_to_login_is_refused_before_it_is_spooled(
    make_client, counted
) -> None:
    """Web security audit: /login needs no token, took bodies up to the upload limit, and
    Starlette spooled each part over 1 MB to a temporary file: 4 clients trickling 20 MB
    held 80 MB of /tmp, and 23 parts a request held 22 files open (the server ran out)."""
    from exprsim.web.forms import FORM_MAX_BYTES

    client = make_client(token="s")
    body, headers = _multipart(
        [(b'name="token"', b"x"), (b'name="f"; filename="a.bin"', b"\0" * (2 << 20))]
    )
    if counted:  # no Content-Length: counted as it comes, stopped past 64 KB (in memory)
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        r = client.post("/login", content=chunks, headers=headers)
    else:
        r = client.post("/login", content=body, headers=headers)
    assert r.status_code == 413  # was 422 (no counted failure), after spooling 2 MB
    assert "form too large" in r.text and "<form" in r.text  # the login page
    small, headers = _multipart([(b'name="token"', b"s")])
    assert len(small) < FORM_MAX_BYTES
    r = client.post("/login", content=small, headers=headers, follow_redirects=False)
    assert r.status_code == 303  # a multipart login is still taken


def test_one_file_per_request_whatever_the_parts_are_named(make_client, photo) -> None:
    """Web security audit: 23 file parts under 23 names were each spooled, and held open."""
    client = make_client()
    name, data, kind = photo()
    body, headers = _multipart(
        [(b'name="file"; filename="a.jpg"', data), (b'name="other"; filename="b.jpg"', data)]
    )
    r = client.post("/api/faces", content=body, headers=headers)
    assert (r.status_code, r.json()) == (422, {"error": "one file per request"})  # was 200
    assert client.post("/api/faces", files={"file": (name, data, kind)}).status_code == 200


# -- a proxy in front (web security audit: behind a TLS proxy on this machine, nobody could
# log in: 403 "host not allowed", or "cross-origin request refused" when the proxy gives
# its own Host; one client's 5 wrong tokens locked everyone out, all coming from the proxy)

PUBLIC = "https://faces.example.com"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("faces.example.com", PUBLIC, 303),  # the proxy keeps the Host: was 403
        ("127.0.0.1:8000", PUBLIC, 303),  # the proxy gives its own Host: was 403
        ("127.0.0.1:8000", "https://evil.example", 403),
        ("127.0.0.1:8000", "http://faces.example.com", 403),  # another scheme: another origin
        ("127.0.0.1:8000", "https://faces.example.com:8443", 403),
        ("evil.example", "https://evil.example", 403),  # DNS rebinding: still refused
    ],
)
def test_a_public_url_may_log_in_through_a_proxy(make_client, host, origin, status) -> None:
    client = make_client(token="s", allowed_hosts=LOOPBACK, public_urls=(PUBLIC + "/",))
    headers = {
        "host": host,
        "origin": origin,
        "content-type": "application/x-www-form-urlencoded",
    }
    r = client.post("/login", content=b"token=s", headers=headers, follow_redirects=False)
    assert r.status_code == status


def test_without_a_public_url_the_proxy_is_refused_as_before(make_client) -> None:
    client = make_client(token="s", allowed_hosts=LOOPBACK)
    headers = {"host": "127.0.0.1:8000", "origin": PUBLIC}
    r = client.post("/login", data={"token": "s"}, headers=headers, follow_redirects=False)
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("HTTPS://Faces.Example.com:443/", "https://faces.example.com"),
        ("http://faces.example.com:80", "http://faces.example.com"),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_public_urls_are_origins(url, origin) -> None:
    from exprsim.web import ServeConfig

    cfg = ServeConfig(db="x.db", public_urls=(url,), allowed_hosts=("localhost",))
    assert cfg.public_urls == (origin,)
    assert cfg.allowed_hosts[0] == "localhost" and len(cfg.allowed_hosts) == 2
    assert ServeConfig(db="x.db", public_urls=(url,)).allowed_hosts == ()  # none: any host


@pytest.mark.parametrize(
    "url", ["faces.example.com", "ftp://x", "https://x/app", "https://u:p@x", "https://x?a", 5]
)
def test_a_public_url_that_is_not_an_origin_is_refused(url) -> None:
    from exprsim.errors import ArgumentError
    from exprsim.web import ServeConfig

    with pytest.raises(ArgumentError, match="public URL"):
        ServeConfig(db="x.db", public_urls=(url,))  # type: ignore[arg-type]


def test_a_trusted_proxy_names_the_client(monkeypatch) -> None:
    """``--trusted-proxy``: uvicorn reads X-Forwarded-For from that address only."""
    import asyncio
    import socket

    pytest.importorskip("uvicorn")
    from exprsim.cli import serve_cmd
    from exprsim.web.server import GuardedServer

    seen: list[tuple[str, str]] = []

    async def app(scope, receive, send) -> None:
        seen.append((scope["client"][0], scope["scheme"]))

    configs = []
    monkeypatch.setattr(GuardedServer, "run", lambda self, sockets: configs.append(self.config))
    for proxies in [("127.0.0.1",), ()]:
        with socket.socket() as sock:
            serve_cmd._run_server(app, sock, "127.0.0.1", True, proxies)
    trusted, plain = configs
    headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    trusted.load()
    plain.load()
    for config, peer in [(trusted, "127.0.0.1"), (trusted, "10.1.1.1"), (plain, "127.0.0.1")]:
        scope = {"type": "http", "client": (peer, 5), "scheme": "http", "headers": headers}
        asyncio.run(config.loaded_app(scope, None, None))
    assert seen == [("203.0.113.7", "https"), ("10.1.1.1", "http"), ("127.0.0.1", "http")]


@pytest.mark.parametrize(
    ("site", "mode", "status"),
    [
        ("cross-site", "no-cors", 403),  # an <img> on another site's page: was 200
        ("same-site", "cors", 403),  # a page on another port of this host: was 200
        ("cross-site", "navigate", 200),  # a link followed from elsewhere
        ("same-origin", "no-cors", 200),  # the app's own pages
        ("none", "navigate", 200),  # typed in, a bookmark
        (None, None, 200),  # curl, scripts
    ],
)
def test_another_sites_page_may_not_load_from_a_server_without_a_token(
    make_client, site, mode, status
) -> None:
    """Web security audit: a page elsewhere loaded thumbnails and the album map of a server
    without a token (their load or error told which face ids exist) and started work."""
    client = make_client()
    headers = {k: v for k, v in [("sec-fetch-site", site), ("sec-fetch-mode", mode)] if v}
    r = client.get("/api/summary/map.png", headers=headers)
    assert r.status_code in ((403,) if status == 403 else (200, 404, 409, 422))
    r = client.get("/api/health", headers=headers)
    assert r.status_code == status
    assert r.headers["cross-origin-resource-policy"] == "same-origin"


# -- accessibility (the round's audit, WCAG 2.1 AA) ------------------------------------------


def test_the_login_error_is_tied_to_the_token_field(make_client) -> None:
    """A screen reader said "Token, password, required" and never "wrong token"."""
    client = make_client(token="s")
    text = client.post("/login", data={"token": "x"}).text
    assert "id='login-err' role='alert'>wrong token<" in text
    assert "aria-describedby='login-err' aria-invalid='true'" in text
    assert "aria-invalid" not in client.get("/login").text  # no error: nothing tied


@pytest.mark.parametrize(
    ("path", "current"),
    [("/", "/"), ("/summary", "/summary"), ("/tags", "/tags"), ("/video", "/video")],
)
def test_the_header_is_a_nav_naming_the_current_page(make_client, path, current) -> None:
    text = make_client().get(path).text
    assert '<nav aria-label="pages">' in text
    assert f'<a href="{current}" aria-current=page>' in text
    assert text.count("aria-current=page") == 1


def test_the_video_page_announces_states_not_every_poll(make_client) -> None:
    """`#job` was a live region rewritten every 0.7 s: "running: 25 / 25 frames" three
    times for a 25-frame clip, hundreds for a long one; the progress bar had no name."""
    text = make_client().get("/video").text
    assert '<div id="job"></div>' in text  # was aria-live="polite"
    assert '<p id="said" class="sr" role="status"></p>' in text
    assert "if (s.textContent !== text)" in text  # said again only when it changes
    assert "'aria-label': 'progress of ' + name" in text


def test_thumbnails_name_their_photos(make_client, photo) -> None:
    """The summary's members were "face 8" and a tag's faces "d=0.000"."""
    client = make_client()
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"):
        assert client.post("/api/index", files={"file": photo(name)}).status_code == 200
    (cluster,) = client.get("/api/summary?n=1").json()["clusters"]
    assert sorted(cluster["member_files"]) == ["astronaut_eileen_collins.jpg", "grace_hopper.jpg"]
    assert len(cluster["member_files"]) == len(cluster["members"])
    assert client.post(
        f"/api/tags/from-face/{cluster['members'][0]}", data={"name": "t"}
    ).is_success
    faces = client.get("/api/tags/t/faces?threshold=2").json()["faces"]
    assert {f["file"] for f in faces} == {"astronaut_eileen_collins.jpg", "grace_hopper.jpg"}


def test_a_job_of_an_earlier_server_still_running_is_left_alone(tmp_path, caplog) -> None:
    """Mixed-versions audit: a server from before the job locks ran its job without an
    `.active` file; a new server started beside it marked the job failed and deleted its
    upload. Such a folder is now left alone for a day, then taken as abandoned."""
    import json
    import os
    import time

    from exprsim.web import jobs

    job = tmp_path / "0123456789abcdef"
    (job / "input").mkdir(parents=True)
    (job / "input" / "clip.mp4").write_bytes(b"\0" * 100)
    assert jobs.VideoJobs(None, tmp_path).recover() == 0  # was 1: upload deleted
    assert (job / "input" / "clip.mp4").exists() and not (job / "job.json").exists()
    assert "made by an earlier exprsim" in caplog.text
    old = time.time() - 2 * jobs._UNLOCKED_JOB_GRACE_S
    for p in (job, job / "input", job / "input" / "clip.mp4"):
        os.utime(p, (old, old))
    assert jobs.VideoJobs(None, tmp_path).recover() == 1  # a day on: abandoned
    assert json.loads((job / "job.json").read_text())["status"] == "failed"


def test_a_browser_asking_for_no_page_gets_a_page(make_client) -> None:
    """Accessibility audit: `/nope` answered raw JSON, without the header's links."""
    client = make_client()
    r = client.get("/nope", headers={"accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in r.text and '<nav aria-label="pages">' in r.text
    assert client.get("/nope").json() == {"error": "Not Found"}  # API clients: as before
    r = client.get("/api/nope", headers={"accept": "text/html"})
    assert r.headers["content-type"].startswith("application/json")
