"""``embed --engine ray``, audit 19 (new code 3, 4, 9; docs 8): a web server or Redis at
``--address`` passed the check (a TCP connect) and ``ray.init`` then waited for ever;
``RAY://`` or an unknown scheme (``gcs://``) gave Ray's traceback; a ``.txt`` list split a
file name at U+2028 and other Unicode line separators; ``-o e.csv`` made a folder named
``e.csv`` without a word, and the summary said "1 shards", "1 faces", "1 images". Each test
failed before its fix, but the guards marked so (what must keep passing). Ray is started
only in the ``slow`` test (a real head, whose GCS the check must let through)."""

from __future__ import annotations

import contextlib
import http.server
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exprsim.errors import ExprsimError
from exprsim.scale import ray_embed

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "exprsim" / "samples"
#: what a gRPC server answers first: an empty SETTINGS frame (9-byte header, type 4)
SETTINGS = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
PREFACE_SIZE = 24 + 9  # the HTTP/2 client preface and the client's empty SETTINGS frame


@pytest.fixture(autouse=True)
def no_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_USE_TLS", raising=False)


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """``serve(handler)``: a port on 127.0.0.1 whose every connection ``handler`` gets."""
    servers: list[socket.socket] = []

    def start(handler: Callable[[socket.socket], None]) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def loop() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:  # closed: the test is over
                    return
                with conn, contextlib.suppress(OSError):
                    handler(conn)

        threading.Thread(target=loop, daemon=True).start()
        return int(server.getsockname()[1])

    yield start
    for server in servers:
        server.close()


def grpc_like(conn: socket.socket) -> None:
    """Reads the client's preface, answers SETTINGS (in two pieces, as TCP may deliver it)."""
    assert _recv_exactly(conn, PREFACE_SIZE).startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    conn.sendall(SETTINGS[:2])
    time.sleep(0.05)
    conn.sendall(SETTINGS[2:] + b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
    time.sleep(0.2)


def redis_like(conn: socket.socket) -> None:
    _recv_exactly(conn, PREFACE_SIZE)
    conn.sendall(b"-ERR unknown command 'PRI', with args beginning with: '*' 'HTTP/2.0'\r\n")
    time.sleep(0.2)


def short_reply(conn: socket.socket) -> None:
    """Four bytes that are no frame header, then silence: refused without waiting."""
    _recv_exactly(conn, PREFACE_SIZE)
    conn.sendall(b"+OK\r\n")
    time.sleep(3)


def closes_at_once(conn: socket.socket) -> None:
    """Accepts the connection and closes it."""


def silent(conn: socket.socket) -> None:
    time.sleep(3)


def _refused(address: str, timeout: float = 5.0) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(ExprsimError) as info:
        ray_embed.check_address(address, timeout=timeout)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"nothing at {address} answers as a Ray cluster ("), message
    return message, time.monotonic() - start


# --- 1. something that is not a Ray cluster listens at the address -------------------------


@pytest.fixture
def web_server() -> Iterator[int]:
    """``python -m http.server`` on 127.0.0.1 (the audit's repro)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_web_server_is_refused_at_once(web_server: int) -> None:
    message, seconds = _refused(f"127.0.0.1:{web_server}")  # was: passed, then a hang
    assert seconds < 3 and "not as a gRPC server" in message


def test_redis_a_short_reply_and_a_closed_connection_are_refused(serve: Any) -> None:
    message, seconds = _refused(f"127.0.0.1:{serve(redis_like)}")
    assert "-ERR unknown command" in message and seconds < 3
    message, seconds = _refused(f"localhost:{serve(short_reply)}")
    assert "'+OK'" in message and seconds < 2
    message, seconds = _refused(f"127.0.0.1:{serve(closes_at_once)}")
    assert "closed the connection" in message or "reset" in message
    assert seconds < 3


def test_a_listener_that_never_answers_is_refused_after_the_timeout(serve: Any) -> None:
    message, seconds = _refused(f"127.0.0.1:{serve(silent)}", timeout=0.5)
    assert "no answer within 0.5 s" in message and seconds < 2


def test_a_grpc_server_passes_also_as_ray_client(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard: a gRPC server (what a Ray head's GCS and a Ray Client server are) passes."""
    port = serve(grpc_like)
    ray_embed.check_address(f"127.0.0.1:{port}", timeout=2)
    ray_embed.check_address(f"[::ffff:127.0.0.1]:{port}", timeout=2)
    monkeypatch.setitem(sys.modules, "grpc", types.ModuleType("grpc"))  # Ray Client there
    for scheme in ("ray", "RAY", "Ray"):  # was: RAY:// left to Ray, which crashed
        ray_embed.check_address(f"{scheme}://127.0.0.1:{port}", timeout=2)


def test_a_ray_client_address_is_probed_too(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc", types.ModuleType("grpc"))
    _refused(f"ray://127.0.0.1:{serve(redis_like)}")
    _refused(f"RAY://127.0.0.1:{serve(redis_like)}")


def test_with_tls_only_the_connection_is_tested(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard: a TLS cluster answers no plain HTTP/2 preface; it is not refused for it."""
    monkeypatch.setenv("RAY_USE_TLS", "1")  # a TLS cluster answers no plain HTTP/2 preface
    ray_embed.check_address(f"127.0.0.1:{serve(silent)}", timeout=0.5)


@pytest.mark.usefixtures("ray_never_starts")
def test_cli_refuses_a_web_server_in_one_line_and_makes_no_folder(
    tmp_path: Path, capsys: Any, web_server: int
) -> None:
    from exprsim.cli import main

    out = tmp_path / "shards"
    argv = ["-q", "embed", "--engine", "ray", str(SAMPLES), "-o", str(out)]
    rc = main([*argv, "--address", f"localhost:{web_server}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"exprsim embed: error: nothing at localhost:{web_server} answers")
    assert not out.exists()


@pytest.mark.slow
def test_a_real_ray_heads_gcs_passes_and_others_do_not(
    web_server: int, serve: Any, tmp_path: Path
) -> None:
    """A head started by ``ray start --head``: its GCS port must pass the probe."""
    pytest.importorskip("ray", reason="Ray not installed: pip install 'exprsim[ray]'")
    exe = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if exe is None:
        pytest.skip("no ray command")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="exprsim-ray-")  # short: Ray's socket paths must fit
    argv = [exe, "start", "--head", "--block", f"--port={port}", "--num-cpus=1"]
    argv += ["--include-dashboard=false", f"--temp-dir={temp}"]
    log = (tmp_path / "ray.log").open("w")
    head = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_gcs(port, head, tmp_path / "ray.log")
        ray_embed.check_address(f"127.0.0.1:{port}", timeout=5)
        ray_embed.check_address(f"localhost:{port}", timeout=5)
        _refused(f"127.0.0.1:{web_server}")
        _refused(f"127.0.0.1:{serve(silent)}", timeout=1)
    finally:
        with_group = os.getpgid(head.pid) == head.pid
        if with_group:  # every process of this head, and none other
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_gcs(port: int, head: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"ray start ended: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.5)
            continue
        return
    pytest.fail("the Ray head did not listen within 120 s")


# --- 2. the scheme ------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["gcs://x:1", "://x:1", "no.such.module://x", "a-b://x"])
def test_a_scheme_that_names_no_module_is_refused_in_one_line(address: str) -> None:
    with pytest.raises(ExprsimError, match="is not auto, local, HOST:PORT") as info:
        ray_embed.check_address(address)  # was: passed to Ray ("Module: gcs does not exist")
    assert "\n" not in str(info.value) and "names no Ray plug-in" in str(info.value)


def test_a_plugin_scheme_is_left_to_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard: a scheme naming a Ray plug-in (a module with a ``ClientBuilder``) is Ray's to
    judge, as before."""
    import importlib.machinery

    plugin = types.ModuleType("exprsim_test_plugin")
    plugin.__spec__ = importlib.machinery.ModuleSpec("exprsim_test_plugin", None)
    plugin.ClientBuilder = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "exprsim_test_plugin", plugin)
    ray_embed.check_address("exprsim_test_plugin://anything")


@pytest.mark.usefixtures("ray_never_starts")
@pytest.mark.parametrize("address", ["gcs://x:1", "RAY://127.0.0.1:{port}"])
def test_cli_refuses_a_scheme_in_one_line(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    from exprsim.cli import main

    monkeypatch.setitem(sys.modules, "grpc", types.ModuleType("grpc"))
    out = tmp_path / "shards"
    argv = ["-q", "embed", "--engine", "ray", str(SAMPLES), "-o", str(out)]
    rc = main([*argv, "--address", address.format(port=_free_port())])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("exprsim embed: error: "), err
    assert not out.exists()


class RecordingRay:
    def __init__(self) -> None:
        self.addresses: list[Any] = []

    def init(self, address: Any = None, **kwargs: Any) -> None:
        self.addresses.append(address)


def test_ray_is_given_the_scheme_in_lower_case() -> None:
    ray = RecordingRay()
    for address in ("RAY://head:10001", "Ray://head", "head:6379", None, "auto"):
        ray_embed._start_ray(ray, address, None, logging.ERROR)
    assert ray.addresses == ["ray://head:10001", "ray://head", "head:6379", None, "auto"]


# --- 3. a .txt list -----------------------------------------------------------------------

#: line separators of str.splitlines() that a file name may hold
ODD = ["a\u2028b.jpg", "c\x85d.jpg", "e\u2029f.jpg", "g\x1ch.jpg", "i\x0bj.jpg", "k\x0cl.jpg"]


def test_a_text_list_splits_at_newlines_only(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("\r\n".join([*ODD, "", "plain.jpg", "  "]) + "\r\n", encoding="utf-8")
    assert ray_embed.list_inputs(listing) == sorted([*ODD, "plain.jpg"])  # was: 13 halves


def test_a_text_list_reads_as_the_local_engines_list(tmp_path: Path) -> None:
    from exprsim.cli.argtypes import _read_list  # the --files-from reader

    names = ["a\u2028b.jpg", "c\x85d.jpg", "e\u2029f.jpg", "plain.jpg"]
    for i, text in enumerate(["\n".join(names) + "\n", "\0".join(names) + "\0"]):
        listing = tmp_path / f"list{i}.txt"
        listing.write_text(text, encoding="utf-8")
        assert ray_embed.list_inputs(listing) == sorted(_read_list(str(listing)))


# --- 4. -o e.csv; the summary's counts ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "warned"),
    [("e.csv", True), ("e.JSON", True), ("e.jsonl", True), ("shards", False), ("e.parquet", False)],
)
def test_a_folder_named_as_a_table_is_warned_about(
    tmp_path: Path, caplog: Any, monkeypatch: pytest.MonkeyPatch, name: str, warned: bool
) -> None:
    """A plain or a .parquet folder name is a guard: no warning."""
    monkeypatch.setattr(ray_embed, "_check_before_ray", lambda *a: None)
    monkeypatch.setattr(ray_embed, "_run_on_ray", lambda *a: [0, 0, 0])
    with caplog.at_level(logging.WARNING, logger="exprsim.scale.ray_embed"):
        ray_embed.embed_with_ray(["x.jpg"], tmp_path / name, progress=False)
    lines = [r.getMessage() for r in caplog.records if "Parquet shards named" in r.message]
    assert len(lines) == warned
    if warned:
        assert f"writes a folder of Parquet shards named {name}" in lines[0]
        assert "\n" not in lines[0]


def test_the_summary_counts_agree_with_their_numbers() -> None:
    one = ray_embed.RayEmbedReport("out", 1, 0, 1, 1, 0, 0.5)
    assert (
        one.summary()
        == "1 shard embedded, 0 already done; 1 face from 1 image (0 unreadable) in 0.5 s -> out"
    )
    two = ray_embed.RayEmbedReport("out", 3, 1, 2, 0, 1, 0.5)
    assert two.summary().startswith("2 shards embedded, 1 already done; 0 faces from 2 images")


# --- a folder of an exprsim that wrote no stamp ----------------------------------------------


def _unstamped_folder(tmp_path: Path, model: str) -> Path:
    """A shards folder as a version without ``_embed.json`` left it: one shard whose rows
    name ``model``."""
    out = tmp_path / "shards"
    out.mkdir()
    name = ray_embed.shard_name(0, ["a.jpg"])
    ray_embed.write_shard([{"source": "a.jpg", "face": 0, "model": model}], out / name)
    return out


def test_an_unstamped_folder_of_another_model_is_refused(tmp_path: Path) -> None:
    """Before: resumed and stamped with the new model, its old rows kept (two models)."""
    out = _unstamped_folder(tmp_path, "older@1")
    stamp = {"model": "exprnet_ens@8 (weights 0123456789ab)", "detector": "d", "shard_size": 1}
    with pytest.raises(ExprsimError, match=r"model older@1 .*not exprnet_ens@8"):
        ray_embed._prepare_folder(out, stamp)
    assert not (out / ray_embed.STAMP_NAME).exists()


def test_an_unstamped_folder_of_the_same_model_is_stamped(tmp_path: Path) -> None:
    """Guard: the same model's shards are resumed, as before."""
    out = _unstamped_folder(tmp_path, "exprnet_ens@8")
    stamp = {"model": "exprnet_ens@8 (weights 0123456789ab)", "detector": "d", "shard_size": 1}
    ray_embed._prepare_folder(out, stamp)
    assert (out / ray_embed.STAMP_NAME).exists()


# --- a run that fails before its first shard ---------------------------------------------------


@pytest.mark.parametrize("existed", [False, True])
def test_a_run_that_fails_before_its_first_shard_leaves_no_new_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existed: bool
) -> None:
    """Before: `--address auto` with no cluster left an empty folder with a stamp. A folder
    that was there before (a user's, or an earlier run's) is left as it is (guard)."""

    def no_cluster(*args: Any) -> list[int]:
        raise ConnectionError("Could not find any running Ray instance")

    monkeypatch.setattr(ray_embed, "_check_before_ray", lambda *a: None)
    monkeypatch.setattr(ray_embed, "_run_on_ray", no_cluster)
    out = tmp_path / "shards"
    if existed:
        out.mkdir()
    with pytest.raises(ConnectionError):
        ray_embed.embed_with_ray(["x.jpg"], out, progress=False)
    assert out.exists() == existed
