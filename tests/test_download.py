"""safe_extract refuses malicious tarballs; download_mvtec resumes over HTTP Range and checks sha256.

The HTTP tests talk to a small server on 127.0.0.1 in a background thread; no
internet is needed and every request has a short timeout.
"""

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glance_lite.data import DataError, download_mvtec, list_categories, load_mvtec, safe_extract


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"x", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in attrs.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def mvtec_tarball(path: Path, mode: str = "w:gz", categories=("bottle", "wood")) -> Path:
    """A miniature MVTec AD archive: categories at the top level plus a licence file."""
    with tarfile.open(path, mode) as tar:
        _add(tar, "license.txt", b"CC BY-NC-SA 4.0")
        for cat in categories:
            _add(tar, f"{cat}/train/good/000.png", _png(10))
            _add(tar, f"{cat}/test/good/000.png", _png(20))
            _add(tar, f"{cat}/test/broken/000.png", _png(30))
            _add(tar, f"{cat}/ground_truth/broken/000_mask.png", _png(255))
    return path


# ----------------------------------------------------------------- safe_extract
MALICIOUS = {
    "absolute": dict(name="/tmp/evil.txt"),
    "dotdot": dict(name="good/../../evil.txt"),
    "symlink_out": dict(name="sym_out", type=tarfile.SYMTYPE, linkname="../../etc/passwd"),
    "symlink_abs": dict(name="sym_abs", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
    "hardlink_out": dict(name="hard", type=tarfile.LNKTYPE, linkname="../outside.txt"),
    "device": dict(name="dev0", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
    "fifo": dict(name="pipe", type=tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_safe_extract_refuses(tmp_path, case):
    spec = dict(MALICIOUS[case])
    name = spec.pop("name")
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        _add(tar, "ok/fine.txt", b"fine")
        _add(tar, name, b"" if "type" in spec else b"evil", **spec)
    dest = tmp_path / "out"
    with pytest.raises(DataError) as info:
        safe_extract(archive, dest)
    assert name in str(info.value)
    assert not (dest / "ok").exists(), "nothing may be extracted from an unsafe archive"
    assert not (tmp_path / "evil.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # temp dir cleaned


def test_safe_extract_allows_internal_links(tmp_path):
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tar:
        _add(tar, "a/file.txt", b"data")
        _add(tar, "a/b/link", type=tarfile.SYMTYPE, linkname="../file.txt")
    out = safe_extract(archive, tmp_path / "dest")
    assert (out / "a/b/link").read_bytes() == b"data"


@pytest.mark.parametrize("mode,suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:xz", ".tar.xz")])
def test_safe_extract_good_tarball_merges(tmp_path, mode, suffix):
    archive = mvtec_tarball(tmp_path / f"mvtec{suffix}", mode)
    dest = tmp_path / "mvtec"
    (dest / "bottle").mkdir(parents=True)
    (dest / "bottle" / "keep.txt").write_text("mine")  # existing content is merged, not wiped
    safe_extract(archive, dest)
    assert list_categories(dest) == ["bottle", "wood"]
    assert (dest / "bottle" / "keep.txt").read_text() == "mine"
    assert len(load_mvtec(dest, "wood", "test", 8)) == 2


def test_safe_extract_not_a_tar(tmp_path):
    bad = tmp_path / "junk.tar.xz"
    bad.write_bytes(b"definitely not xz")
    with pytest.raises(DataError, match="junk.tar.xz"):
        safe_extract(bad, tmp_path / "out")


def test_download_with_local_tarball_and_category_filter(tmp_path):
    archive = mvtec_tarball(tmp_path / "mvtec.tar.xz", "w:xz")
    root = download_mvtec(tmp_path / "data", categories=["wood"], tarball=archive)
    assert list_categories(root) == ["wood"]
    assert download_mvtec(root, categories=["wood"], tarball=tmp_path / "gone.tar") == root  # already there
    with pytest.raises(DataError, match="carpet"):
        download_mvtec(tmp_path / "data2", categories=["carpet"], tarball=archive)
    with pytest.raises(DataError, match="does not exist"):
        download_mvtec(tmp_path / "data3", tarball=tmp_path / "nope.tar")


# ----------------------------------------------------------------- resumable HTTP download
class _Server:
    """Serves one payload at /mvtec.tar.gz with optional Range support; records Range headers."""

    def __init__(self, payload: bytes, ranges: bool = True):
        self.payload, self.ranges, self.seen = payload, ranges, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                outer.seen.append(rng)
                body, status = outer.payload, 200
                if rng and outer.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.end_headers()
                        return
                    body, status = body[start:], 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mvtec.tar.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def payload(tmp_path):
    return mvtec_tarball(tmp_path / "src.tar.gz").read_bytes()


def test_download_resumes_from_part_file(tmp_path, payload):
    root = tmp_path / "data"
    root.mkdir()
    half = len(payload) // 2
    (root / "mvtec.tar.gz.part").write_bytes(payload[:half])
    digest = hashlib.sha256(payload).hexdigest()
    with _Server(payload) as srv:
        download_mvtec(root, url=srv.url, sha256=digest, chunk=97, timeout=5)
    assert srv.seen == [f"bytes={half}-"]
    assert (root / "mvtec.tar.gz").read_bytes() == payload
    assert not (root / "mvtec.tar.gz.part").exists()
    assert list_categories(root) == ["bottle", "wood"]


def test_download_restarts_when_server_ignores_range(tmp_path, payload):
    root = tmp_path / "data"
    root.mkdir()
    (root / "mvtec.tar.gz.part").write_bytes(b"garbage that is not the start")
    with _Server(payload, ranges=False) as srv:
        download_mvtec(root, url=srv.url, timeout=5)
    assert (root / "mvtec.tar.gz").read_bytes() == payload


def test_download_checksum_mismatch(tmp_path, payload):
    root = tmp_path / "data"
    with _Server(payload) as srv:
        with pytest.raises(DataError, match="checksum mismatch.*expected sha256 0{64}"):
            download_mvtec(root, url=srv.url, sha256="0" * 64, timeout=5)
    assert not (root / "mvtec.tar.gz").exists()  # bad file removed so a retry starts fresh
    assert list_categories(root) == []


def test_download_unreachable_server(tmp_path):
    with _Server(b"") as srv:
        url = srv.url
    with pytest.raises(DataError, match="tarball="):
        download_mvtec(tmp_path / "data", url=url, timeout=2)


# ----------------------------------------------------------------- Imagenette (distillation photos)
def _imagenette_tarball() -> bytes:
    """A tiny imagenette2-160.tgz: two classes, three JPEG photographs."""
    import io
    from PIL import Image
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for k, (wnid, name) in enumerate([("n01440764", "a"), ("n01440764", "b"), ("n02102040", "c")]):
            img = io.BytesIO()
            Image.new("RGB", (213, 160), (60 * k, 100, 40)).save(img, "JPEG", quality=95)
            _add(tar, f"imagenette2-160/train/{wnid}/{name}.JPEG", img.getvalue())
    return buf.getvalue()


def test_imagenette_downloads_through_torchvision_from_a_local_server(tmp_path, monkeypatch):
    """The same path a Colab user takes (torchvision's Imagenette download), served locally."""
    import hashlib
    from torchvision.datasets import Imagenette
    from glance_lite.data import distillation_images, distillation_images_or_offline
    body = _imagenette_tarball()
    with _Server(body) as srv:
        url = srv.url.rsplit("/", 1)[0] + "/imagenette2-160.tgz"
        monkeypatch.setitem(Imagenette._ARCHIVES, "160px", (url, hashlib.md5(body).hexdigest()))
        x, used = distillation_images_or_offline("imagenette", root=tmp_path)
    assert used == "imagenette" and x.shape == (3, 3, 128, 128)
    assert (tmp_path / "imagenette2-160" / "train" / "n02102040" / "c.JPEG").is_file()
    assert abs(x[2, 0].mean().item() - 120 / 255) < 0.03  # the third photograph, red 120
    # once there, no server is needed
    assert distillation_images("imagenette", root=tmp_path).shape == (3, 3, 128, 128)


def test_distillation_falls_back_offline_and_says_so(tmp_path, monkeypatch, capsys):
    import socket
    from glance_lite.data import distillation_images, distillation_images_or_offline

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    x, used = distillation_images_or_offline("imagenette", root=tmp_path)
    assert used == "sklearn" and x.shape == (2, 3, 427, 640)
    assert "'imagenette' unavailable" in capsys.readouterr().err
    with pytest.raises(DataError) as err:  # the error names the URL, the folder and the way out
        distillation_images("imagenette", root=tmp_path)
    msg = str(err.value)
    assert "imagenette2-160.tgz" in msg and str(tmp_path) in msg and "sklearn" in msg
    with pytest.raises(DataError, match="neither"):  # a wrong name is not silently replaced
        distillation_images_or_offline("imagenet-typo", root=tmp_path)


# ----------------------------------------------------------------- ImageNet teacher weights
def test_imagenet_teacher_downloads_through_torchvision_from_a_local_server(tmp_path, monkeypatch):
    """`load_teacher("imagenet")` on a machine with internet (Colab): torchvision's weights enum ->
    torch.hub's download -> the hub cache -> Local-Net's teacher. Only the host is redirected
    (download.pytorch.org -> a local server serving a state dict made here)."""
    import io
    import torch
    import torch.hub
    from torchvision.models import resnet18
    from glance_lite import teacher as teacher_mod
    torch.manual_seed(3)
    served = resnet18(weights=None).state_dict()
    buf = io.BytesIO()
    torch.save(served, buf)
    real_urlopen = torch.hub.urlopen
    with _Server(buf.getvalue()) as srv:
        base = srv.url.rsplit("/", 1)[0]

        def redirected(req, *args, **kwargs):
            req.full_url = req.full_url.replace("https://download.pytorch.org/models", base)
            return real_urlopen(req, *args, **kwargs)

        monkeypatch.setattr(torch.hub, "urlopen", redirected)
        old_dir = torch.hub.get_dir()
        torch.hub.set_dir(str(tmp_path / "hub"))
        try:
            t = teacher_mod.load_teacher("imagenet")
            cached = teacher_mod.weights_path()
        finally:
            torch.hub.set_dir(old_dir)
    assert cached.is_file() and cached.parent == tmp_path / "hub" / "checkpoints"
    assert t.kind == "imagenet"
    assert torch.equal(t.backbone.conv1.weight, served["conv1.weight"])


# ----------------------------------------------------------------- CIFAR-10 (one-class chapter)
def _cifar_tarball(per_batch: int = 20) -> tuple[bytes, dict]:
    """A tiny cifar-10-python.tar.gz in torchvision's layout -> (bytes, {file: md5})."""
    import hashlib
    import io
    import pickle
    import numpy as np
    rng = np.random.default_rng(0)
    files, md5 = {}, {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [k % 10 for k in range(per_batch)]}
        files[name] = pickle.dumps(entry)
    files["batches.meta"] = pickle.dumps({"label_names": [f"class{k}" for k in range(10)]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            _add(tar, f"cifar-10-batches-py/{name}", data)
            md5[name] = hashlib.md5(data).hexdigest()
    return buf.getvalue(), md5


def test_cifar10_downloads_through_torchvision_from_a_local_server(tmp_path, monkeypatch):
    """Chapter 9's CIFAR-10 path on Colab (torchvision's download and checksums), served locally."""
    import hashlib
    from torchvision.datasets import CIFAR10
    from glance_lite.data import one_class_split
    body, md5 = _cifar_tarball()
    with _Server(body) as srv:
        monkeypatch.setattr(CIFAR10, "url", srv.url.rsplit("/", 1)[0] + "/cifar-10-python.tar.gz")
        monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(body).hexdigest())
        monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
        monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
        monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                              "md5": md5["batches.meta"]})
        s = one_class_split("cifar10", normal_class=4, root=tmp_path, seed=0)
    assert (tmp_path / "cifar-10-python.tar.gz").is_file()
    assert s.train.shape == (10, 3, 32, 32)          # 5 batches x 2 images of class 4
    assert s.test_labels.tolist() == [0, 0, 1, 1]    # its 2 test images + as many outliers
