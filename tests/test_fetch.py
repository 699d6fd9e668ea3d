"""``python -m bench data fetch``: download, checksum and atomic unpack, against a local HTTP server on 127.0.0.1."""

import argparse
import hashlib
import http.server
import socket
import threading
import time

import numpy as np
import pytest

from bench import cli
from bench.data import DataConfig, load_dataset
from bench.data.cli import add_data_parser
from bench.data.fetch import SOURCES, fetch
from bench.data.movielens import read_movielens
from bench.data.paths import default_data_dir
from tests.test_movielens_formats import USERS, check_1m, make_zip, ml_1m_files, ml_100k_files

ZIP_1M = make_zip("ml-1m", ml_1m_files())
ZIP_100K = make_zip("ml-100k", ml_100k_files())
SHA_1M, SHA_100K = hashlib.sha256(ZIP_1M).hexdigest(), hashlib.sha256(ZIP_100K).hexdigest()
NOT_A_ZIP = b"<html>mirror moved</html>" * 40


class Handler(http.server.BaseHTTPRequestHandler):
    """/ml-1m.zip, /ml-100k.zip, /truncated.zip (short body), /garbage.zip, /slow.zip (stalls); anything else is a 404."""

    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        Handler.hits.append(self.path)
        bodies = {"/ml-1m.zip": ZIP_1M, "/ml-100k.zip": ZIP_100K, "/garbage.zip": NOT_A_ZIP}
        if self.path == "/truncated.zip":
            self._headers(len(ZIP_1M))
            self.wfile.write(ZIP_1M[: len(ZIP_1M) // 2])  # then the connection closes (HTTP/1.0)
        elif self.path == "/slow.zip":
            self._headers(len(ZIP_1M))
            self.wfile.flush()
            time.sleep(2.0)
        elif self.path in bodies:
            self._headers(len(bodies[self.path]))
            self.wfile.write(bodies[self.path])
        else:
            self.send_error(404, "Not Found")

    def _headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def dead_url():
    """A URL on a local port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/ml-1m.zip"


def bench_main(argv, monkeypatch) -> int:
    """``python -m bench ARGV`` through bench.cli.main (its error handling), on a parser with ``data`` added."""

    def build_parser():
        parser = argparse.ArgumentParser(prog="python -m bench")
        add_data_parser(parser.add_subparsers(dest="command", required=True))
        return parser

    monkeypatch.setattr(cli, "build_parser", build_parser)
    return cli.main(argv)


def everything(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else None


def test_pinned_sources():
    assert SOURCES["movielens-1m"].url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert SOURCES["movielens-100k"].url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert SOURCES["movielens-1m"].sha256 == "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"
    assert SOURCES["movielens-100k"].sha256 == "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"


def test_fetch_1m_then_load(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIEN_BENCH_DATA", str(tmp_path / "root"))
    parser = argparse.ArgumentParser()
    add_data_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", "fetch", "movielens-1m", "--url", f"{server}/ml-1m.zip", "--sha256", SHA_1M.upper()])
    assert args.func(args) == 0
    target = tmp_path / "root" / "movielens" / "ml-1m"
    assert everything(tmp_path / "root") == ["movielens", "movielens/ml-1m", *(f"movielens/ml-1m/{n}" for n in sorted(ml_1m_files()))]
    assert (target / "movies.dat").read_bytes() == ml_1m_files()["movies.dat"]  # latin-1 titles unpacked byte for byte
    assert f"movielens-1m: downloaded and checked, in {target}" in capsys.readouterr().out

    check_1m(read_movielens(default_data_dir("movielens-1m"), "1m"))
    ds = load_dataset(DataConfig(dataset="movielens-1m", data_dir=str(default_data_dir("movielens-1m")), maxlen=5))
    assert 3 <= ds.vocab.cates <= 10 + 2 and len(ds.test) == 2 * round(USERS * 0.1)

    hits = len(Handler.hits)
    assert args.func(args) == 0  # a second fetch keeps the files and downloads nothing
    assert len(Handler.hits) == hits and "already there" in capsys.readouterr().out


def test_fetch_100k_with_dest(server, tmp_path, capsys):
    target = fetch("movielens-100k", tmp_path / "data", url=f"{server}/ml-100k.zip", sha256=SHA_100K, timeout=5, progress=True)
    assert target == tmp_path / "data" / "movielens" / "ml-100k"
    assert sorted(p.name for p in target.iterdir()) == ["u.data", "u.item", "u.user"]
    assert "B" in capsys.readouterr().err  # the tqdm bar
    inter = read_movielens(tmp_path / "data", "100k")  # --data-dir may name the --dest folder
    assert len(np.unique(inter.user)) == USERS


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and not captured.out, captured.err
    return lines[0]


@pytest.mark.parametrize("dest_exists", [False, True])
def test_wrong_checksum(server, tmp_path, monkeypatch, capsys, dest_exists):
    dest = tmp_path / "dest"
    if dest_exists:
        dest.mkdir()
    url = f"{server}/ml-1m.zip"
    assert bench_main(["data", "fetch", "movielens-1m", "--dest", str(dest), "--url", url], monkeypatch) == 2  # pinned sha256
    line = one_error_line(capsys)
    assert f"sha256 mismatch for {url}: got {SHA_1M}, expected {SOURCES['movielens-1m'].sha256}" in line
    assert f"put ratings.dat and movies.dat in {dest / 'movielens' / 'ml-1m'} by hand" in line
    assert everything(dest) == ([] if dest_exists else None)  # no half folder, no temporary files, no new folders


FAILURES = {
    "truncated": ("/truncated.zip", SHA_1M, f"download truncated: got {len(ZIP_1M) // 2} of {len(ZIP_1M)} bytes from "),
    "404": ("/nothing-here.zip", SHA_1M, "download failed: HTTP 404 Not Found for "),
    "not a zip": ("/garbage.zip", hashlib.sha256(NOT_A_ZIP).hexdigest(), "is not a readable zip archive"),
    "stalled": ("/slow.zip", SHA_1M, "timed out for "),
}


@pytest.mark.parametrize("case", FAILURES)
def test_failed_download_is_one_line_and_leaves_nothing(server, tmp_path, monkeypatch, capsys, case):
    path, sha, message = FAILURES[case]
    dest, url = tmp_path / "dest", f"{server}{path}"
    argv = ["data", "fetch", "movielens-1m", "--dest", str(dest), "--url", url, "--sha256", sha, "--timeout", "0.5"]
    assert bench_main(argv, monkeypatch) == 2
    line = one_error_line(capsys)
    assert message in line and url in line and str(dest / "movielens" / "ml-1m") in line
    assert everything(dest) is None


def test_offline(dead_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIEN_BENCH_DATA", str(tmp_path / "root"))
    assert bench_main(["data", "fetch", "movielens-1m", "--url", dead_url, "--timeout", "5"], monkeypatch) == 2
    line = one_error_line(capsys)
    assert f"download failed (offline?): connection refused for {dead_url}" in line
    assert f"get ml-1m.zip from https://grouplens.org/datasets/movielens/1m/ and put ratings.dat and movies.dat in {tmp_path}" in line
    assert everything(tmp_path / "root") is None


def test_bad_arguments(tmp_path, monkeypatch, capsys):
    assert bench_main(["data", "fetch", "movielens-1m", "--dest", str(tmp_path), "--sha256", "ab" * 32], monkeypatch) == 2
    assert "--sha256 goes with --url" in one_error_line(capsys)
    assert bench_main(["data", "fetch", "movielens-1m", "--dest", str(tmp_path), "--url", "http://x/", "--sha256", "abc"], monkeypatch) == 2
    assert "64 hex digits" in one_error_line(capsys)
    with pytest.raises(SystemExit) as err:
        bench_main(["data", "fetch", "movielens-20m"], monkeypatch)
    assert err.value.code == 2 and "invalid choice" in capsys.readouterr().err
    (tmp_path / "movielens" / "ml-1m").mkdir(parents=True)
    (tmp_path / "movielens" / "ml-1m" / "ratings.dat").write_text("1::1::5::1\n")
    assert bench_main(["data", "fetch", "movielens-1m", "--dest", str(tmp_path)], monkeypatch) == 2
    assert "folder exists but lacks ratings.dat or movies.dat; remove it and fetch again" in one_error_line(capsys)
