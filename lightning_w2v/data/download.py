"""Download, checksum and safely extract the NSynth, MusicNet and MAESTRO archives.

Downloads stream into ``<dest>.part`` and resume with an HTTP ``Range`` request when
re-run; the checksum (md5, or SHA-256 where upstream publishes that, as MAESTRO does) is
computed while streaming (and over the already-present part when resuming) and the file is
renamed to ``<dest>`` only once complete and verified. Archives (tar or zip) are extracted
into a temporary folder inside the dataset root and the
top-level folder is then renamed into place, so an interrupted run never leaves a
half-extracted dataset behind. Every failure raises :class:`DownloadError` with a
message meant for humans.

Command line: ``lightning-w2v data download nsynth --root data --splits test``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Mapping, Sequence

import requests
from tqdm import tqdm
from urllib3.exceptions import HTTPError as _Urllib3Error

from ..errors import ConfigError, DataError
from ..files import MARKER_NAME, claim_folder

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # bytes per read/write while streaming
DEFAULT_TIMEOUT = 30.0  # seconds, for connecting and for each read


class DownloadError(DataError, RuntimeError):
    """A download or extraction failed; the message says what happened and what to do."""


class ChecksumError(DownloadError):
    """A downloaded file did not match its expected md5 (it was moved to ``*.bad-md5``)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set as distributed upstream."""

    key: str  # split name ("train", ...) or role ("archive", "metadata")
    filename: str
    md5: str | None  # the expected checksum, an md5 unless ``algorithm`` says otherwise
    size: int | None = None
    top_level: str | None = None  # folder the archive creates under root; None: plain file
    subdir: str = ""  # plain files only: folder under root to put the file in
    md5_verified: bool = True  # False: checksum comes from third parties, not upstream
    algorithm: str = "md5"  # or "sha256"
    joined_into: str | None = None  # one part of a split archive: the parts, in order, make this file


@dataclass(frozen=True)
class JoinedArchive:
    """An archive distributed in parts (``name.001``, ...): joined, then extracted into ``root/into``."""

    name: str
    into: str


@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set lives and which files make it up."""

    name: str
    default_url: str
    env_var: str
    files: tuple[RemoteFile, ...]
    selectable_splits: bool  # True: ``splits`` picks files by ``RemoteFile.key``
    joined: tuple[JoinedArchive, ...] = ()


_NSYNTH_MD5 = {"train": "fde6665a93865503ba598b9fac388660",
               "valid": "87e94a00a19b6dbc99cf6d4c0c0cae87",
               "test": "5e6f8719bf7e16ad0a00d518b78af77d"}
NSYNTH = DatasetSpec(
    "nsynth", "http://download.magenta.tensorflow.org/datasets/nsynth/",
    "LIGHTNING_W2V_NSYNTH_URL",
    tuple(RemoteFile(split, f"nsynth-{split}.jsonwav.tar.gz", md5, top_level=f"nsynth-{split}")
          for split, md5 in _NSYNTH_MD5.items()),
    selectable_splits=True,
)

MUSICNET = DatasetSpec(
    "musicnet", "https://zenodo.org/records/5120004/files/", "LIGHTNING_W2V_MUSICNET_URL",
    (
        # UNVERIFIED md5s: taken from third-party loaders, not published by Zenodo's
        # record page. On a mismatch, see the hint in the error (md5_overrides=None).
        RemoteFile("archive", "musicnet.tar.gz", "844764911fa0d5b97c97da944a057590",
                   size=11_097_394_998, top_level="musicnet", md5_verified=False),
        RemoteFile("metadata", "musicnet_metadata.csv", "1caef62cee9c875235e62aac368b49d8",
                   subdir="musicnet", md5_verified=False),
    ),
    selectable_splits=False,
)

MAESTRO = DatasetSpec(
    "maestro", "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/", "LIGHTNING_W2V_MAESTRO_URL",
    (  # SHA-256 as published on MAESTRO's page (101 GB; 120 GB extracted)
        RemoteFile("archive", "maestro-v3.0.0.zip",
                   "6680fea5be2339ea15091a249fbd70e49551246ddbd5ca50f1b2352c08c95291", top_level="maestro-v3.0.0",
                   algorithm="sha256"),
    ),
    selectable_splits=False,
)

_MTT_SHA256 = (  # third-party SHA-256s (JukeMIR's download list): City's page publishes none
    "f857fe185968773058cc71662c2ef5d8f2d4b7338e3c122cfd52f82dcb9760b9",
    "fc2e1ec441755556ed1398b1808f1b08b6034372f8bc27394510c0c58cdb52ce",
    "83a689824c17e82f6eb81cdbc4e4ca239a4cfc1fb41f1a5c80b861caec90450f",
)
MTT = DatasetSpec(
    "mtt", "https://mirg.city.ac.uk/datasets/magnatagatune/", "LIGHTNING_W2V_MTT_URL",
    (*(RemoteFile(f"part{i}", f"mp3.zip.00{i}", digest, md5_verified=False, algorithm="sha256",
                  joined_into="mp3.zip") for i, digest in enumerate(_MTT_SHA256, start=1)),
     RemoteFile("annotations", "annotations_final.csv",
                "99b94e95825d4fa576386a5367b9c96e0ec636e9f9c240aceb492f4728f68c3c", md5_verified=False,
                algorithm="sha256")),
    selectable_splits=False,
    joined=(JoinedArchive("mp3.zip", "mp3"),),
)

DATASETS: dict[str, DatasetSpec] = {"nsynth": NSYNTH, "musicnet": MUSICNET, "maestro": MAESTRO, "mtt": MTT}


# --------------------------------------------------------------------------- download
def _fmt_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.2f} MiB"


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _digest_of(path: Path, algorithm: str = "md5") -> "hashlib._Hash":
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest


def _reason(exc: BaseException) -> str:
    """The innermost readable cause of a requests/urllib3 error."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if found:
        return found.group(0)
    return str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else text


def _get(url: str, offset: int, timeout: float) -> requests.Response:
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return requests.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.exceptions.Timeout as exc:
        raise DownloadError(f"Timed out talking to {url} ({_reason(exc)}).") from None
    except requests.RequestException as exc:
        raise DownloadError(f"Could not reach {url}: {_reason(exc)}. Check the network "
                            "connection, or point to a mirror.") from None


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``"bytes 10-99/100"`` -> (10, 100); ``"bytes */100"`` -> (None, 100)."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[6:].partition("/")
    start = int(span.split("-")[0]) if span and span != "*" else None
    return start, (int(total) if total.isdigit() else None)


def _check_disk_space(directory: Path, needed: int | None) -> None:
    if needed is None or needed <= 0:
        return
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise DownloadError(
            f"Not enough free disk space in {directory}: {_fmt_bytes(needed)} still to "
            f"download but only {_fmt_bytes(free)} free. Free up space or choose another root.")


def _finalize(part: Path, dest: Path, digest: "hashlib._Hash", expected_md5: str | None,
              url: str) -> Path:
    actual = digest.hexdigest()
    name = digest.name.replace("sha256", "sha-256")
    if expected_md5 and actual.lower() != expected_md5.lower():
        bad = _sibling(dest, ".bad-md5")
        os.replace(part, bad)
        raise ChecksumError(
            f"Checksum mismatch for {dest.name} (downloaded from {url}):\n"
            f"  expected {name} {expected_md5}\n  actual {name}   {actual}\n"
            f"The file was moved aside to {bad} and will not be used. Delete it and re-run "
            "to download again; if the mismatch repeats, the server or mirror serves a "
            "different or corrupted file.")
    os.replace(part, dest)
    log.info("downloaded %s (%s %s)", dest, name, actual)
    return dest


def _stream(resp: requests.Response, part: Path, offset: int, digest: "hashlib._Hash",
            total: int | None, progress: bool, url: str) -> None:
    """Append the response body to ``part`` (truncated first when ``offset`` is 0)."""
    size = offset
    with open(part, "ab" if offset else "wb") as fh, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name[: -len(".part")], disable=not (progress and sys.stderr.isatty()),
            leave=False) as bar:
        try:
            for chunk in resp.raw.stream(CHUNK_SIZE, decode_content=False):
                fh.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                bar.update(len(chunk))
        except (_Urllib3Error, requests.RequestException, OSError) as exc:
            if getattr(exc, "errno", None) == errno.ENOSPC:
                raise DownloadError(f"Disk full while writing {part}; free up space and re-run "
                                    "to resume.") from None
            raise DownloadError(
                f"Transfer of {url} was interrupted after {size} of {total or '?'} bytes "
                f"({_reason(exc)}). The partial file {part} was kept; re-run to resume.") from None
    if total is not None and size < total:
        raise DownloadError(
            f"Transfer of {url} ended early: got {size} of {total} bytes (connection closed). "
            f"The partial file {part} was kept; re-run to resume.")


def download_file(url: str, dest: str | os.PathLike, expected_md5: str | None = None,
                  expected_size: int | None = None, progress: bool = True, *,
                  timeout: float = DEFAULT_TIMEOUT, algorithm: str = "md5") -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` and verifying its checksum and size.

    ``expected_md5``: the expected digest of ``algorithm`` (md5 by default, or sha256).

    An existing ``dest`` counts as done (it is only ever created after verification).
    Raises :class:`DownloadError` on network/HTTP errors, short transfers (the ``.part``
    is kept for resuming) and lack of disk space; :class:`ChecksumError` on a wrong md5
    (the file is moved to ``dest.bad-md5``).
    """
    dest = Path(dest)
    if dest.exists():
        if expected_size is not None and dest.stat().st_size != expected_size:
            raise DownloadError(
                f"{dest} exists but has {dest.stat().st_size} bytes instead of "
                f"{expected_size}. Delete it and re-run.")
        return dest
    part = _sibling(dest, ".part")
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    digest = _digest_of(part, algorithm) if offset else hashlib.new(algorithm)
    if offset and offset == expected_size:
        return _finalize(part, dest, digest, expected_md5, url)

    resp = _get(url, offset, timeout)
    try:
        if resp.status_code == 416 and offset:
            # Range starts at/after the end: the .part is complete, or stale.
            _, total = _parse_content_range(resp.headers.get("Content-Range"))
            resp.close()
            if total == offset:
                return _finalize(part, dest, digest, expected_md5, url)
            log.info("server rejected resuming %s at byte %d; restarting", url, offset)
            offset, digest = 0, hashlib.new(algorithm)
            resp = _get(url, 0, timeout)
        if resp.status_code >= 400:
            raise DownloadError(f"HTTP {resp.status_code} {resp.reason} for {url}")
        if resp.status_code == 206:
            start, total = _parse_content_range(resp.headers.get("Content-Range"))
            if start != offset:
                raise DownloadError(
                    f"{url}: asked for bytes from {offset} but the server sent a range "
                    f"starting at {start}. Delete {part} and re-run.")
        elif resp.status_code == 200:
            if offset:
                log.info("server ignored the Range header for %s; restarting from 0", url)
                offset, digest = 0, hashlib.new(algorithm)
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise DownloadError(f"Unexpected HTTP {resp.status_code} {resp.reason} for {url}")
        if total is not None and expected_size is not None and total != expected_size:
            raise DownloadError(
                f"{url} is {total} bytes but {dest.name} should be {expected_size} bytes; "
                "the server or mirror serves a different file.")
        total = total if total is not None else expected_size
        dest.parent.mkdir(parents=True, exist_ok=True)
        _check_disk_space(dest.parent, None if total is None else total - offset)
        _stream(resp, part, offset, digest, total, progress, url)
    finally:
        resp.close()
    return _finalize(part, dest, digest, expected_md5, url)


# --------------------------------------------------------------------------- extraction
def _escapes(relpath: str) -> bool:
    norm = posixpath.normpath(relpath)
    return norm == ".." or norm.startswith("../")


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` is unsafe to extract, or None."""
    name = member.name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "has a '..' path component"
    if member.ischr() or member.isblk() or member.isfifo():
        return "is a device or FIFO file"
    if member.issym():
        target = member.linkname
        if target.startswith("/") or _escapes(posixpath.join(posixpath.dirname(name), target)):
            return f"is a symlink pointing outside the extraction root ({target!r})"
    elif member.islnk():
        if member.linkname.startswith("/") or _escapes(member.linkname):
            return f"is a hard link pointing outside the extraction root ({member.linkname!r})"
    elif not (member.isfile() or member.isdir()):
        return "has an unsupported member type"
    return None


def _zip_member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member is unsafe to extract, or None."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "has a '..' path component"
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        return "is a symlink"
    return None


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            problem = _zip_member_problem(info)
            if problem:
                raise DownloadError(
                    f"Refusing to extract {archive}: member {info.filename!r} {problem}. The archive "
                    "is corrupted or malicious; nothing was extracted.")
        zf.extractall(into)


def _checked_members(tar: tarfile.TarFile, archive: Path) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        problem = _member_problem(member)
        if problem:
            raise DownloadError(
                f"Refusing to extract {archive}: member {member.name!r} {problem}. The archive "
                "is corrupted or malicious; nothing was extracted.")
        yield member


def _marker_path(archive: Path, dest_root: Path) -> Path:
    return dest_root / f".{archive.name}.extracted"


def _read_marker(marker: Path) -> list[str] | None:
    try:
        return list(json.loads(marker.read_text())["top_level"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def safe_extract(archive: str | os.PathLike, dest_root: str | os.PathLike) -> list[Path]:
    """Extract the tar or zip ``archive`` into ``dest_root`` safely and atomically.

    Members with absolute paths, ``..`` components, links leaving the root, or device
    files are refused (the error names the member). Extraction happens in
    ``dest_root/.<archive>.extracting`` (removed and restarted if left over by an
    interrupted run); the top-level entries are then renamed into ``dest_root`` and a
    marker ``.<archive>.extracted`` written, which makes re-running a no-op.
    Returns the extracted top-level paths.
    """
    archive, dest_root = Path(archive), Path(dest_root)
    marker = _marker_path(archive, dest_root)
    done = _read_marker(marker)
    if done is not None and all((dest_root / n).exists() for n in done):
        return [dest_root / n for n in done]
    if not archive.is_file():
        raise DownloadError(f"Archive {archive} does not exist.")
    is_zip = zipfile.is_zipfile(archive)
    if not is_zip and not tarfile.is_tarfile(archive):
        raise DownloadError(
            f"{archive} is not a tar or zip archive (perhaps an HTML error page or a damaged "
            "download). Delete it and download it again.")
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = dest_root / f".{archive.name}.extracting"
    if tmp.exists():  # ours: marked, or (0.1, before markers) by this name, which only we use
        log.info("removing leftover %s from an interrupted extraction", tmp)
        shutil.rmtree(tmp)
    claim_folder(tmp, "extracting")  # marked, so only this tool ever removes it
    filter_error = getattr(tarfile, "FilterError", ())
    try:
        if is_zip:
            _extract_zip(archive, tmp)
        else:
            with tarfile.open(archive, "r:*") as tar:
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=_checked_members(tar, archive), **kwargs)
        top = sorted(p.name for p in tmp.iterdir() if p.name != MARKER_NAME)
        if not top:
            raise DownloadError(f"{archive} contains no files.")
        clashes = [n for n in top if (dest_root / n).exists()]
        if clashes:
            raise DownloadError(
                f"Cannot extract {archive.name}: {', '.join(clashes)} already exist(s) in "
                f"{dest_root}. Move or delete them and re-run.")
        for n in top:
            os.rename(tmp / n, dest_root / n)
    except BaseException as exc:  # leave nothing half-done behind, then explain
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, filter_error):
            msg = f"Refusing to extract {archive}: member {exc.tarinfo.name!r} is unsafe ({exc})"
        elif isinstance(exc, (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error)):
            msg = f"{archive} is damaged or truncated ({exc}). Delete it and download it again"
        elif isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            msg = f"Disk full while extracting {archive} into {dest_root}; free up space"
        else:
            raise
        raise DownloadError(msg + "; nothing was extracted.") from None
    marker_tmp = _sibling(marker, ".tmp")
    marker_tmp.write_text(json.dumps({"archive": archive.name, "top_level": top}))
    os.replace(marker_tmp, marker)
    shutil.rmtree(tmp, ignore_errors=True)
    return [dest_root / n for n in top]


# --------------------------------------------------------------------------- data sets
def download_dataset(name: str, root: str | os.PathLike, base_url: str | None = None,
                     splits: Sequence[str] | None = None,
                     md5_overrides: Mapping[str, str | None] | None = None,
                     keep_archives: bool = True, *, progress: bool = True,
                     timeout: float = DEFAULT_TIMEOUT) -> dict[str, Path]:
    """Download, verify and extract data set ``name`` ("nsynth", "musicnet", "maestro" or "mtt") under ``root``.

    Layout: ``root/nsynth-<split>/{examples.json,audio/}``; ``root/musicnet/{train,test}_
    {data,labels}/`` plus ``root/musicnet/musicnet_metadata.csv``; ``root/maestro-v3.0.0/``
    (``maestro-v3.0.0.csv``, ``<year>/<name>.wav`` and ``.midi``); ``root/annotations_final.csv`` and
    ``root/mp3/<0-9a-f>/*.mp3`` (MagnaTagATune's three zip parts, joined). Archives are kept in
    ``root`` unless ``keep_archives`` is False. The base URL comes from ``base_url``, else
    ``$LIGHTNING_W2V_NSYNTH_URL`` / ``$LIGHTNING_W2V_MUSICNET_URL`` / ``$LIGHTNING_W2V_MAESTRO_URL``,
    else upstream.
    ``md5_overrides`` maps file names to another md5 (or None: don't check); an override
    also drops the official size check. Completed steps are skipped on re-runs.
    Returns ``{split or role: path}``.
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; choose from {sorted(DATASETS)}")
    spec = DATASETS[name]
    if splits is not None and not spec.selectable_splits:
        raise ConfigError(f"--splits: {name} is a single archive; splits cannot be selected")
    keys = [f.key for f in spec.files]
    if splits is not None and set(splits) - set(keys):
        raise ConfigError(f"--splits: unknown {name} split(s) {sorted(set(splits) - set(keys))}; "
                         f"choose from {keys}.")
    files = [f for f in spec.files if splits is None or f.key in splits]
    overrides = dict(md5_overrides or {})
    unknown = sorted(set(overrides) - {f.filename for f in spec.files})
    if unknown:
        raise ConfigError(f"md5_overrides names unknown file(s) {unknown} for {name}.")
    base = base_url or os.environ.get(spec.env_var) or spec.default_url
    root = Path(root)  # made (by download_file) only once a server answers
    results: dict[str, Path] = {}
    for f in files:
        if f.joined_into and _marker_path(root / f.joined_into, root / _joined(spec, f).into).exists():
            continue  # its archive is already extracted
        url = base.rstrip("/") + "/" + f.filename
        md5, size = (overrides[f.filename], None) if f.filename in overrides else (f.md5, f.size)
        if f.top_level is None:
            dest = root / f.subdir / f.filename
        else:
            dest = root / f.filename
            target = root / f.top_level
            marker = _marker_path(dest, root)
            if marker.exists() and target.exists():
                results[f.key] = target
                continue
            if target.exists():
                raise DownloadError(
                    f"{target} already exists but was not extracted by this tool (no "
                    f"{marker.name}). Check it with verify_dataset, or move it away and re-run.")
        archive_was_there = dest.exists()  # e.g. copied in by the user: theirs, never deleted
        try:
            download_file(url, dest, md5, size, progress, timeout=timeout, algorithm=f.algorithm)
        except DownloadError as exc:
            hint = f"To use a mirror, set {spec.env_var} or pass base_url."
            if isinstance(exc, ChecksumError) and not f.md5_verified and md5 == f.md5:
                hint += (f" Note: the expected md5 of {f.filename} is unverified. If you trust "
                         f"the file, rename the .bad-md5 file to {dest.name} and re-run with "
                         f"md5_overrides={{{f.filename!r}: None}}.")
            raise type(exc)(f"{exc}\n{hint}") from None
        if f.top_level is None:
            results[f.key] = dest
            continue
        safe_extract(dest, root)
        if not target.is_dir():
            raise DownloadError(f"{dest.name} did not contain the expected folder {f.top_level}/.")
        if not keep_archives and not archive_was_there:
            dest.unlink()  # the archive this call downloaded
        results[f.key] = target
    for archive in spec.joined:
        parts = [f for f in spec.files if f.joined_into == archive.name]
        results[archive.name] = _join_and_extract(root, archive, parts, keep_archives)
    return results


def _joined(spec: DatasetSpec, part: RemoteFile) -> JoinedArchive:
    return next(a for a in spec.joined if a.name == part.joined_into)


def _join_and_extract(root: Path, archive: JoinedArchive, parts: Sequence[RemoteFile], keep_archives: bool) -> Path:
    """Join the downloaded parts into ``archive.name`` (atomically) and extract it into ``root/archive.into``;
    without ``keep_archives`` the parts and the joined archive go once it is extracted."""
    target, joined = root / archive.into, root / archive.name
    if _marker_path(joined, target).exists():
        return target
    if not joined.exists():
        partial = _sibling(joined, ".joining")
        with open(partial, "wb") as out:
            for part in parts:
                with open(root / part.filename, "rb") as handle:
                    shutil.copyfileobj(handle, out, CHUNK_SIZE)
        os.replace(partial, joined)
    safe_extract(joined, target)
    if not keep_archives:
        for path in (joined, *(root / part.filename for part in parts)):
            path.unlink(missing_ok=True)  # archives this tool downloaded and joined
    return target
