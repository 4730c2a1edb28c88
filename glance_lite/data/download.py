"""Fetching MVTec AD (paper Sec. 4.1): resumable download, checksum, safe tar extraction.

The archive is large (about 5 GB), so the download

* writes to ``<name>.part`` and, if that file exists, asks the server for the
  remaining bytes only (HTTP ``Range``); a server that ignores the header
  (status 200) makes us start over;
* shows a ``tqdm`` progress bar and verifies an optional SHA-256 checksum
  before the ``.part`` file is renamed.

Extraction never trusts the archive: members with absolute paths, ``..``
components, links pointing outside the target, or device files are refused
with a DataError naming the member, and everything is first extracted into a
temporary folder next to the target and then moved into place, so an
interrupted extraction leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional

from .errors import DataError
from .images import PathLike
from .mvtec import list_categories

# The official archive of all 15 categories (public link from the MVTec AD download page).
MVTEC_URL = ("https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/"
             "download/420938113-1629952094/mvtec_anomaly_detection.tar.xz")

MVTEC_CATEGORIES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
                    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper")


def sha256_of(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path, chunk: int, timeout: float) -> None:
    """Download ``url`` to ``dest``, resuming from ``dest.part`` when it exists."""
    from tqdm.auto import tqdm

    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the .part file is complete
            os.replace(part, dest)
            return
        raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"cannot download {url} ({exc}); check the internet connection, or download "
                        "the archive yourself and pass it as tarball=PATH") from exc
    with response:
        if have and response.status != 206:  # server ignored the Range header: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as f, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name) as bar:
            try:
                for block in iter(lambda: response.read(chunk), b""):
                    f.write(block)
                    bar.update(len(block))
            except OSError as exc:
                raise DataError(f"download of {url} was interrupted after {f.tell()} bytes ({exc}); "
                                f"run again to resume from {part}") from exc
    if total is not None and part.stat().st_size != total:
        raise DataError(f"download of {url} is incomplete: expected {total} bytes, got "
                        f"{part.stat().st_size}; run again to resume from {part}")
    os.replace(part, dest)


def _check_member(m: tarfile.TarInfo, archive: Path) -> None:
    """Refuse any member that could write outside the extraction folder."""
    name = m.name.replace("\\", "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"unsafe member {m.name!r} in {archive}: absolute path")
    if ".." in parts:
        raise DataError(f"unsafe member {m.name!r} in {archive}: '..' path component")
    if m.isdev():
        raise DataError(f"unsafe member {m.name!r} in {archive}: device file or FIFO")
    if m.issym() or m.islnk():
        link = m.linkname.replace("\\", "/")
        if link.startswith("/"):
            raise DataError(f"unsafe member {m.name!r} in {archive}: link to absolute path {m.linkname!r}")
        base = posixpath.dirname(posixpath.join(*parts)) if m.issym() else ""
        target = posixpath.normpath(posixpath.join(base, link))
        if target == ".." or target.startswith("../"):
            raise DataError(f"unsafe member {m.name!r} in {archive}: link {m.linkname!r} points outside "
                            "the extraction folder")


def _move_into(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, merging folders that already exist."""
    if dst.is_dir() and src.is_dir() and not dst.is_symlink():
        for child in src.iterdir():
            _move_into(child, dst / child.name)
    else:
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(src, dst)


def safe_extract(archive: PathLike, dest: PathLike,
                 include: Optional[Callable[[tarfile.TarInfo], bool]] = None) -> Path:
    """Extract a tar archive (.tar, .tar.gz, .tar.xz, .tar.bz2) into ``dest`` safely.

    Args:
        archive: the tar file.
        dest: target folder (created if needed); existing folders are merged.
        include: optional predicate on members (``tarfile.TarInfo``); members for
            which it is False are skipped (used to extract only some categories).
    Returns:
        ``dest`` as a Path.
    Raises:
        DataError: not a tar archive, or an unsafe member (named in the message).
    """
    archive, dest = Path(archive), Path(dest)
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"cannot open {archive} as a tar archive ({exc})") from exc
    with tar:
        try:
            members = [m for m in tar.getmembers() if include is None or include(m)]
        except MemoryError:
            raise
        except Exception as exc:  # TarError, EOFError, lzma/zlib errors on truncated data
            raise DataError(f"archive {archive} is corrupt or truncated ({exc})") from exc
        for m in members:
            _check_member(m, archive)
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
        try:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            try:
                tar.extractall(tmp, members=members, **kwargs)
            except MemoryError:
                raise
            except Exception as exc:
                raise DataError(f"extracting {archive} failed ({type(exc).__name__}: {exc})") from exc
            for child in tmp.iterdir():
                _move_into(child, dest / child.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _category_filter(categories: Iterable[str]) -> Callable[[tarfile.TarInfo], bool]:
    """Keep members under ``<category>/`` for the wanted categories, plus top-level files."""
    wanted = set(categories)

    def include(m: tarfile.TarInfo) -> bool:
        parts = [p for p in m.name.replace("\\", "/").split("/") if p not in ("", ".")]
        return bool(parts) and (parts[0] in wanted or (len(parts) == 1 and m.isfile()))

    return include


def download_mvtec(root: PathLike = "data/mvtec", categories: Optional[Iterable[str]] = None,
                   url: str = MVTEC_URL, sha256: Optional[str] = None, tarball: Optional[PathLike] = None,
                   chunk: int = 1 << 20, timeout: float = 60.0) -> Path:
    """Download (resumably) and safely extract MVTec AD into ``root``; return ``root``.

    Args:
        root: destination; afterwards ``root/<category>/train/good`` etc. exist.
        categories: extract only these (default: everything in the archive).
            If they are all present already, nothing is downloaded.
        url: archive URL (default :data:`MVTEC_URL`).
        sha256: expected hex digest of the archive; checked when given.
        tarball: an archive you already have; skips the download.
        chunk: download block size in bytes.
        timeout: socket timeout in seconds for the HTTP request.
    Raises:
        DataError: network failure, checksum mismatch, or an unsafe archive.
    """
    root = Path(root)
    cats = list(categories) if categories is not None else None
    if cats is not None and set(cats) <= set(list_categories(root)):
        return root
    if tarball is not None:
        archive = Path(tarball)
        if not archive.is_file():
            raise DataError(f"tarball {archive} does not exist")
    else:
        root.mkdir(parents=True, exist_ok=True)
        name = posixpath.basename(urllib.parse.urlparse(url).path) or "mvtec_anomaly_detection.tar.xz"
        archive = root / name
        if not archive.is_file():
            _fetch(url, archive, chunk, timeout)
    if sha256 is not None:
        got = sha256_of(archive)
        if got.lower() != sha256.lower():
            if tarball is None:
                archive.unlink()  # a retry then downloads a fresh copy
            raise DataError(f"checksum mismatch for {archive}: expected sha256 {sha256}, got {got}"
                            + ("" if tarball is not None else "; the file was deleted, run again to re-download"))
    safe_extract(archive, root, include=_category_filter(cats) if cats is not None else None)
    if cats is not None:
        missing = sorted(set(cats) - set(list_categories(root)))
        if missing:
            raise DataError(f"categories {missing} were not found in {archive}; "
                            f"found {list_categories(root)}")
    return root
