"""tinynet.download.fetch against a small archive served on 127.0.0.1 (never the internet)."""
import hashlib
import http.server
import io
import os
import tarfile
import threading

import pytest

from tinynet import download


def make_archive():
    """data.tgz holding data/a.txt and data/sub/b.txt."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, text in (("data/a.txt", b"alpha"), ("data/sub/b.txt", b"beta" * 1000)):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            t.addfile(info, io.BytesIO(text))
    return buf.getvalue()


ARCHIVE = make_archive()
SHA = hashlib.sha256(ARCHIVE).hexdigest()


@pytest.fixture(scope="module")
def server():
    """{'url': base, 'files': {path: (body, declared Content-Length)}}, on a free port."""
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path not in files:
                self.send_error(404)
                return
            body, declared = files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            self.wfile.write(body)           # fewer bytes than declared: a cut connection

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "files": files}
    httpd.shutdown()
    httpd.server_close()


def only(folder):
    return sorted(os.listdir(folder))


def test_download_check_unpack_and_reuse(server, tmp_path):
    server["files"]["/data.tgz"] = (ARCHIVE, len(ARCHIVE))
    path = download.fetch(server["url"] + "/data.tgz", sha256=SHA, size=len(ARCHIVE),
                          cache_dir=tmp_path, progress=False)
    assert path == os.path.join(tmp_path, "data")
    assert open(os.path.join(path, "a.txt"), "rb").read() == b"alpha"
    assert open(os.path.join(path, "sub", "b.txt"), "rb").read() == b"beta" * 1000
    assert only(tmp_path) == ["data", "data.tgz"]          # no .part, no temporary folder
    del server["files"]["/data.tgz"]                       # cached: no second download
    assert download.fetch(server["url"] + "/data.tgz", sha256=SHA, cache_dir=tmp_path,
                          progress=False) == path


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    server["files"]["/bad.tgz"] = (ARCHIVE, len(ARCHIVE))
    with pytest.raises(ValueError, match="sha256 .* expected 0000"):
        download.fetch(server["url"] + "/bad.tgz", sha256="0" * 64, cache_dir=tmp_path,
                       progress=False)
    assert only(tmp_path) == []


def test_wrong_size_leaves_nothing(server, tmp_path):
    server["files"]["/short.tgz"] = (ARCHIVE, len(ARCHIVE))
    with pytest.raises(ValueError, match=f"{len(ARCHIVE)} bytes, expected {len(ARCHIVE) + 1}"):
        download.fetch(server["url"] + "/short.tgz", sha256=SHA, size=len(ARCHIVE) + 1,
                       cache_dir=tmp_path, progress=False)
    assert only(tmp_path) == []


def test_interrupted_download_leaves_nothing(server, tmp_path):
    cut = ARCHIVE[:len(ARCHIVE) // 2]
    server["files"]["/cut.tgz"] = (cut, len(ARCHIVE))     # the connection drops half way
    with pytest.raises(ConnectionError, match="cut off"):
        download.fetch(server["url"] + "/cut.tgz", sha256=SHA, cache_dir=tmp_path,
                       progress=False)
    assert only(tmp_path) == []


def test_truncated_archive_leaves_no_half_unpacked_folder(server, tmp_path):
    truncated = ARCHIVE[:len(ARCHIVE) - 40]               # checksum of what is served: passes
    server["files"]["/trunc.tgz"] = (truncated, len(truncated))
    with pytest.raises(ValueError, match="cannot unpack"):
        download.fetch(server["url"] + "/trunc.tgz",
                       sha256=hashlib.sha256(truncated).hexdigest(), cache_dir=tmp_path,
                       progress=False)
    assert only(tmp_path) == []


def test_offline_error_says_what_to_do(tmp_path):
    with pytest.raises(ConnectionError, match="No network.*--data DIR"):
        download.fetch("http://127.0.0.1:9/x.tgz", sha256=SHA, cache_dir=tmp_path,
                       progress=False, timeout=2, hint="pass --data DIR")
    assert only(tmp_path) == []


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYNET_CACHE", str(tmp_path))
    assert download.cache_dir() == str(tmp_path)
    monkeypatch.delenv("TINYNET_CACHE")
    assert download.cache_dir().endswith(os.path.join(".cache", "tinynet"))


def test_a_checksum_is_required(tmp_path):
    with pytest.raises(ValueError, match="sha256"):
        download.fetch("http://127.0.0.1:9/x.tgz", cache_dir=tmp_path)
