"""Tests for lightning_w2v.data.download against a local HTTP server on 127.0.0.1.

The server supports Range requests and can be told to cut a transfer half-way (full
Content-Length, then close) or to answer with an error status. Archives are tiny but
real, in the official NSynth jsonwav and MusicNet layouts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import socket
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_verify import NOTES, write_musicnet_tree, write_nsynth_split  # noqa: E402

from lightning_w2v.commands import main  # noqa: E402
from lightning_w2v.data import download  # noqa: E402
from lightning_w2v.data.download import (  # noqa: E402
    ChecksumError,
    DownloadError,
    download_dataset,
    download_file,
    safe_extract,
)
from lightning_w2v.data.verify import verify_dataset  # noqa: E402

TIMEOUT = 5.0
NSYNTH_TEST = "nsynth-test.jsonwav.tar.gz"


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)  # path (no leading /) -> body
    log: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    cut_once: set[str] = field(default_factory=set)  # paths whose next body is cut in half
    status: dict[str, int] = field(default_factory=dict)  # path -> forced error status
    ignore_range: bool = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        path = urlparse(self.path).path.lstrip("/")
        byte_range = self.headers.get("Range")
        state.log.append((path, byte_range))
        if path in state.status:
            self.send_error(state.status[path])
            return
        data = state.files.get(path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if byte_range and not state.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", byte_range).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path in state.cut_once:
            state.cut_once.discard(path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # clients dropping connections after a cut transfer is expected


@dataclass
class Server:
    state: ServerState
    port: int

    def url(self, prefix: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def serve(self, path: str, data: bytes) -> str:
        self.state.files[path] = data
        return self.url(path)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield Server(httpd.state, httpd.server_address[1])  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=TIMEOUT)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tar_gz(src: Path, *names: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in names:
            tar.add(src / name, arcname=name)
    return buf.getvalue()


@pytest.fixture(scope="module")
def nsynth_archive(tmp_path_factory) -> bytes:
    src = tmp_path_factory.mktemp("nsynth_src")
    write_nsynth_split(src, "test")
    return tar_gz(src, "nsynth-test")


@pytest.fixture(scope="module")
def musicnet_archive(tmp_path_factory) -> bytes:
    src = tmp_path_factory.mktemp("musicnet_src")
    write_musicnet_tree(src)
    return tar_gz(src, "musicnet")


def _evil_tar(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("nsynth-test/examples.json")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"{}"))
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _visible(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


# --------------------------------------------------------------------------- data sets
def test_nsynth_download_verify_extract(server, nsynth_archive, tmp_path) -> None:
    server.serve(f"nsynth/{NSYNTH_TEST}", nsynth_archive)
    root = tmp_path / "data"
    paths = download_dataset("nsynth", root, base_url=server.url("nsynth/"), splits=["test"],
                             md5_overrides={NSYNTH_TEST: md5(nsynth_archive)}, progress=False,
                             timeout=TIMEOUT)
    assert paths == {"test": root / "nsynth-test"}
    assert (root / NSYNTH_TEST).read_bytes() == nsynth_archive  # kept
    assert not list(root.glob("*.part")) and not list(root.glob(".*.extracting"))
    assert sorted(p.stem for p in (root / "nsynth-test" / "audio").iterdir()) == sorted(NOTES)
    report = verify_dataset("nsynth", root, {"test": 3}, check_audio="all")
    assert report.ok, report.format()
    n_requests = len(server.state.log)
    again = download_dataset("nsynth", root, base_url=server.url("nsynth/"), splits=["test"],
                             md5_overrides={NSYNTH_TEST: md5(nsynth_archive)}, progress=False)
    assert again == paths and len(server.state.log) == n_requests  # re-run is a no-op


def test_env_var_base_url_and_drop_archives(server, nsynth_archive, tmp_path,
                                            monkeypatch) -> None:
    server.serve(f"mirror/{NSYNTH_TEST}", nsynth_archive)
    monkeypatch.setenv("LIGHTNING_W2V_NSYNTH_URL", server.url("mirror"))
    download_dataset("nsynth", tmp_path, splits=["test"], keep_archives=False,
                     md5_overrides={NSYNTH_TEST: md5(nsynth_archive)}, progress=False,
                     timeout=TIMEOUT)
    assert server.state.log == [(f"mirror/{NSYNTH_TEST}", None)]
    assert _visible(tmp_path) == ["nsynth-test"]
    download_dataset("nsynth", tmp_path, splits=["test"], keep_archives=False,
                     md5_overrides={NSYNTH_TEST: None}, progress=False)
    assert len(server.state.log) == 1


def test_musicnet_download(server, musicnet_archive, tmp_path) -> None:
    meta = b"id,composer,composition,movement,ensemble,source,transcriber,catalog_name,seconds\n"
    server.serve("zenodo/musicnet.tar.gz", musicnet_archive)
    server.serve("zenodo/musicnet_metadata.csv", meta)
    paths = download_dataset(
        "musicnet", tmp_path, base_url=server.url("zenodo"), progress=False, timeout=TIMEOUT,
        md5_overrides={"musicnet.tar.gz": md5(musicnet_archive),
                       "musicnet_metadata.csv": md5(meta)})
    assert paths == {"archive": tmp_path / "musicnet",
                     "metadata": tmp_path / "musicnet" / "musicnet_metadata.csv"}
    assert paths["metadata"].read_bytes() == meta
    report = verify_dataset("musicnet", tmp_path, {"train": 2, "test": 10}, check_audio="all")
    assert report.ok, report.format()


def _zip(src: Path, top: str) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for file in sorted((src / top).rglob("*")):
            zf.write(file, file.relative_to(src).as_posix())
    return buffer.getvalue()


def test_maestro_download_is_a_sha256_checked_zip_in_its_layout(server, tmp_path, monkeypatch) -> None:
    """MAESTRO publishes SHA-256 digests and ships a zip: both go through the same resumable, checked path."""
    from lightning_w2v.data.demo_maestro import write_demo_maestro

    src = tmp_path / "src"
    write_demo_maestro(src)
    archive = _zip(src, "maestro-v3.0.0")
    spec = download.DATASETS["maestro"]
    file = spec.files[0]
    monkeypatch.setitem(download.DATASETS, "maestro", download.DatasetSpec(
        spec.name, spec.default_url, spec.env_var,
        (download.RemoteFile(file.key, file.filename, hashlib.sha256(archive).hexdigest(),
                             top_level=file.top_level, algorithm="sha256"),), False))
    server.serve("maestro/maestro-v3.0.0.zip", archive)
    root = tmp_path / "data"
    paths = download_dataset("maestro", root, base_url=server.url("maestro"), progress=False, timeout=TIMEOUT)
    assert paths == {"archive": root / "maestro-v3.0.0"}
    report = verify_dataset("maestro", root, {"train": 3, "validation": 1, "test": 1}, check_audio="all")
    assert report.ok, report.format()
    # a wrong SHA-256 is named as such
    monkeypatch.setitem(download.DATASETS, "maestro", download.DatasetSpec(
        spec.name, spec.default_url, spec.env_var,
        (download.RemoteFile(file.key, file.filename, "0" * 64, top_level=file.top_level, algorithm="sha256"),),
        False))
    with pytest.raises(ChecksumError, match="expected sha-256 0000"):
        download_dataset("maestro", tmp_path / "other", base_url=server.url("maestro"), progress=False,
                         timeout=TIMEOUT)


def test_corrupted_archive_md5_mismatch(server, nsynth_archive, tmp_path) -> None:
    broken = bytearray(nsynth_archive)
    broken[len(broken) // 2] ^= 0xFF
    server.serve(f"nsynth/{NSYNTH_TEST}", bytes(broken))
    with pytest.raises(ChecksumError) as err:
        download_dataset("nsynth", tmp_path, base_url=server.url("nsynth"), splits=["test"],
                         md5_overrides={NSYNTH_TEST: md5(nsynth_archive)}, progress=False,
                         timeout=TIMEOUT)
    msg = str(err.value)
    assert NSYNTH_TEST in msg and md5(nsynth_archive) in msg and md5(bytes(broken)) in msg
    assert "LIGHTNING_W2V_NSYNTH_URL" in msg
    assert (tmp_path / f"{NSYNTH_TEST}.bad-md5").read_bytes() == bytes(broken)
    assert [p.name for p in tmp_path.iterdir()] == [f"{NSYNTH_TEST}.bad-md5"]


def test_unverified_md5_hint(server, tmp_path, monkeypatch) -> None:
    spec = download.DATASETS["musicnet"]
    small = dataclasses.replace(spec.files[0], size=10)  # keep the official md5, fake size
    monkeypatch.setitem(download.DATASETS, "musicnet",
                        dataclasses.replace(spec, files=(small, spec.files[1])))
    server.serve("z/musicnet.tar.gz", b"x" * 10)
    with pytest.raises(ChecksumError, match="unverified"):
        download_dataset("musicnet", tmp_path, base_url=server.url("z"), progress=False,
                         md5_overrides={"musicnet_metadata.csv": None}, timeout=TIMEOUT)


def test_existing_unmarked_folder_and_bad_arguments(tmp_path) -> None:
    (tmp_path / "nsynth-test").mkdir()
    with pytest.raises(DownloadError, match="not extracted by this tool"):
        download_dataset("nsynth", tmp_path, base_url="http://127.0.0.1:9/", splits=["test"])
    with pytest.raises(ValueError):
        download_dataset("nsynth", tmp_path, splits=["training"])
    with pytest.raises(ValueError):
        download_dataset("gtzan", tmp_path)
    with pytest.raises(ValueError):
        download_dataset("nsynth", tmp_path, md5_overrides={"nsynth.zip": None})


# --------------------------------------------------------------------------- download_file
def test_resume_after_cut_transfer(server, nsynth_archive, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(download, "CHUNK_SIZE", 16 * 1024)
    url = server.serve("f/a.tar.gz", nsynth_archive)
    server.state.cut_once.add("f/a.tar.gz")
    dest = tmp_path / "a.tar.gz"
    with pytest.raises(DownloadError, match="re-run to resume") as err:
        download_file(url, dest, md5(nsynth_archive), len(nsynth_archive), progress=False,
                      timeout=TIMEOUT)
    assert url in str(err.value)
    part = tmp_path / "a.tar.gz.part"
    on_disk = part.stat().st_size
    assert 0 < on_disk <= len(nsynth_archive) // 2
    assert part.read_bytes() == nsynth_archive[:on_disk]
    download_file(url, dest, md5(nsynth_archive), len(nsynth_archive), progress=False,
                  timeout=TIMEOUT)
    assert server.state.log == [("f/a.tar.gz", None), ("f/a.tar.gz", f"bytes={on_disk}-")]
    assert dest.read_bytes() == nsynth_archive and not part.exists()


def test_resume_when_server_ignores_range(server, nsynth_archive, tmp_path) -> None:
    url = server.serve("f/a.tar.gz", nsynth_archive)
    server.state.cut_once.add("f/a.tar.gz")
    dest = tmp_path / "a.tar.gz"
    with pytest.raises(DownloadError):
        download_file(url, dest, md5(nsynth_archive), progress=False, timeout=TIMEOUT)
    server.state.ignore_range = True
    download_file(url, dest, md5(nsynth_archive), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == nsynth_archive
    assert server.state.log[-1][1] is not None  # asked to resume, got 200, restarted


def test_complete_part_is_finalized(server, tmp_path) -> None:
    data = b"0123456789" * 100
    url = server.serve("f/x.bin", data)
    dest = tmp_path / "x.bin"
    (tmp_path / "x.bin.part").write_bytes(data)
    download_file(url, dest, md5(data), progress=False, timeout=TIMEOUT)  # server says 416
    assert dest.read_bytes() == data and server.state.log == [("f/x.bin", "bytes=1000-")]
    dest.unlink()
    (tmp_path / "x.bin.part").write_bytes(data)
    download_file(url, dest, md5(data), len(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data and len(server.state.log) == 1  # size known: no request


def test_size_mismatch_is_refused_before_writing(server, tmp_path) -> None:
    url = server.serve("f/x.bin", b"x" * 100)
    with pytest.raises(DownloadError, match="different file"):
        download_file(url, tmp_path / "x.bin", expected_size=200, progress=False,
                      timeout=TIMEOUT)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_names_url(server, tmp_path, status) -> None:
    url = server.url("nsynth/missing.tar.gz")
    if status != 404:
        server.state.status["nsynth/missing.tar.gz"] = status
    with pytest.raises(DownloadError) as err:
        download_file(url, tmp_path / "m.tar.gz", progress=False, timeout=TIMEOUT)
    assert url in str(err.value) and str(status) in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/nsynth-test.jsonwav.tar.gz"
    with pytest.raises(DownloadError, match="Could not reach") as err:
        download_file(url, tmp_path / "x", progress=False, timeout=TIMEOUT)
    assert url in str(err.value)


def test_not_enough_disk_space(server, tmp_path, monkeypatch) -> None:
    url = server.serve("f/big.bin", b"z" * 4096)
    usage = download.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(download.shutil, "disk_usage",
                        lambda path: usage._replace(free=1000))
    with pytest.raises(DownloadError, match="disk space"):
        download_file(url, tmp_path / "big.bin", progress=False, timeout=TIMEOUT)
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_error_without_traceback(tmp_path, capsys) -> None:
    rc = main(["data", "download", "nsynth", "--root", str(tmp_path), "--splits", "test",
               "--base-url", "http://127.0.0.1:9/"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err


# --------------------------------------------------------------------------- safe_extract
def test_safe_extract_is_atomic_and_idempotent(nsynth_archive, tmp_path) -> None:
    archive = tmp_path / NSYNTH_TEST
    archive.write_bytes(nsynth_archive)
    root = tmp_path / "root"
    leftover = root / f".{NSYNTH_TEST}.extracting"
    (leftover / "nsynth-test").mkdir(parents=True)
    (leftover / "nsynth-test" / "junk.wav").write_bytes(b"half")
    assert safe_extract(archive, root) == [root / "nsynth-test"]
    assert not leftover.exists() and not (root / "nsynth-test" / "junk.wav").exists()
    assert (root / f".{NSYNTH_TEST}.extracted").exists()
    archive.unlink()  # the marker makes a second call a no-op
    assert safe_extract(archive, root) == [root / "nsynth-test"]


def _symlink(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("member, data", [
    (tarfile.TarInfo("../evil"), b"pwned"),
    (tarfile.TarInfo("nsynth-test/../../evil"), b"pwned"),
    (tarfile.TarInfo("/tmp/evil-abs"), b"pwned"),
    (_symlink("nsynth-test/link", "../../evil"), b""),
    (_symlink("nsynth-test/link", "/etc/passwd"), b""),
    (_symlink("nsynth-test/hard", "../evil", tarfile.LNKTYPE), b""),
    (_symlink("nsynth-test/dev", "", tarfile.CHRTYPE), b""),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink", "abs-symlink", "hardlink", "device"])
def test_safe_extract_refuses_unsafe_members(tmp_path, member, data) -> None:
    archive = _evil_tar(tmp_path / "evil.tar.gz", (member, data))
    root = tmp_path / "a" / "b"
    root.mkdir(parents=True)
    with pytest.raises(DownloadError, match="Refusing") as err:
        safe_extract(archive, root)
    assert repr(member.name) in str(err.value)
    assert list(root.iterdir()) == []  # nothing extracted, temp dir removed
    assert not (tmp_path / "evil").exists() and not (tmp_path / "a" / "evil").exists()


def test_safe_extract_non_archive_and_truncated(nsynth_archive, tmp_path) -> None:
    html = tmp_path / "page.tar.gz"
    html.write_text("<html><body>404 Not Found</body></html>")
    with pytest.raises(DownloadError, match="not a tar or zip archive"):
        safe_extract(html, tmp_path / "out")
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(nsynth_archive[: len(nsynth_archive) // 2])
    with pytest.raises(DownloadError, match="damaged or truncated"):
        safe_extract(truncated, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(DownloadError, match="does not exist"):
        safe_extract(tmp_path / "nope.tar.gz", tmp_path / "out")


def test_mtt_download_joins_its_three_parts_and_reads_as_magnatagatune(server, tmp_path) -> None:
    """MagnaTagATune is one zip cut into mp3.zip.001-003 plus annotations_final.csv: each part SHA-256-checked
    and resumable like any file, then joined (atomically) and extracted into mp3/; a re-run is a no-op."""
    from lightning_w2v.data.sets.mtt import write_synthetic_mtt

    src = tmp_path / "src"
    write_synthetic_mtt(src)
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for file in sorted((src / "mp3").rglob("*.mp3")):
            zf.write(file, file.relative_to(src / "mp3").as_posix())  # hex folders at the top, as distributed
    archive = buffer.getvalue()
    cut = [0, len(archive) // 3, 2 * len(archive) // 3, len(archive)]
    parts = [archive[cut[i]:cut[i + 1]] for i in range(3)]
    annotations = (src / "annotations_final.csv").read_bytes()
    overrides = {f"mp3.zip.00{i + 1}": hashlib.sha256(p).hexdigest() for i, p in enumerate(parts)}
    overrides["annotations_final.csv"] = hashlib.sha256(annotations).hexdigest()
    for name, data in zip(overrides, [*parts, annotations]):
        server.serve(f"mtt/{name}", data)
    root = tmp_path / "data"
    paths = download_dataset("mtt", root, base_url=server.url("mtt"), md5_overrides=overrides, progress=False,
                             timeout=TIMEOUT)
    assert paths["mp3.zip"] == root / "mp3" and (root / "mp3.zip").read_bytes() == archive
    (root / "split.tsv").write_bytes((src / "split.tsv").read_bytes())  # the stand-in's own split
    report = verify_dataset("mtt", root, {"train": 24, "valid": 12, "test": 12}, check_audio="all")
    assert report.ok, report.format()
    requests = len(server.state.log)
    assert download_dataset("mtt", root, base_url=server.url("mtt"), md5_overrides=overrides, progress=False,
                            timeout=TIMEOUT)["mp3.zip"] == root / "mp3"
    assert len(server.state.log) == requests  # done: nothing fetched again
    overrides["mp3.zip.002"] = "0" * 64
    with pytest.raises(ChecksumError, match="expected sha-256 0000"):
        download_dataset("mtt", tmp_path / "other", base_url=server.url("mtt"), md5_overrides=overrides,
                         progress=False, timeout=TIMEOUT)
    assert not (tmp_path / "other" / "mp3").exists()  # nothing joined or extracted from a bad part
