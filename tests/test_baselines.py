"""Baselines: coreset, Mahalanobis, CutPaste, memory guard, AMC, and the `compare` contract."""
import json

import numpy as np
import pytest
import torch

from glance_lite.baselines.amc import MinMax, amc, image_scores
from glance_lite.baselines.common import (DEFAULT_MAX_BYTES, GIB, check_bank_size, fill_batches, gaussian_smooth,
                                          gib, max_bank_bytes)
from glance_lite.neighbours import nearest_distances
from glance_lite.baselines.gaussian import fit_gaussians, mahalanobis
from glance_lite.baselines.nns import NNS, greedy_coreset
from glance_lite.baselines.psg import cutpaste, psg_batch


# ----------------------------------------------------------------------------- NNS
def _brute_force_coreset(points: np.ndarray, n: int, start: int) -> list[int]:
    chosen = [start]
    while len(chosen) < n:
        best, best_d = None, -1.0
        for i in range(len(points)):
            if i in chosen:
                continue
            d = min(np.linalg.norm(points[i] - points[c]) for c in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
    return chosen


def test_greedy_coreset_picks_farthest_points_like_brute_force():
    # a tight cluster near the origin and three far corners
    pts = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1],
                        [10.0, 0.0], [0.0, 7.0], [-5.0, -5.0], [0.05, 0.02]])
    idx = greedy_coreset(pts, 4, start=0).tolist()
    assert idx == [0, 4, 6, 5]  # the far corners: 10 away, then 7.07 (beats 7), then 7
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(40, 2))
    for start in (0, 7):
        got = greedy_coreset(torch.from_numpy(cloud), 10, start=start).tolist()
        assert got == _brute_force_coreset(cloud, 10, start)


def test_nearest_distances_match_a_direct_computation():
    q, bank = torch.randn(37, 5), torch.randn(11, 5)
    want = torch.cdist(q, bank).min(dim=1).values
    assert torch.allclose(nearest_distances(q, bank, max_chunk_bytes=4 * 11 * 3), want)


def test_nearest_distances_index_is_the_nearest_row_across_bank_blocks():
    g = torch.Generator().manual_seed(0)
    q, bank = torch.randn(40, 3, generator=g), torch.randn(20000, 3, generator=g)  # 2 blocks of 16384
    d, idx = nearest_distances(q, bank, max_chunk_bytes=4 * 16384 * 7, return_index=True)
    want = torch.cdist(q, bank).min(dim=1)
    assert torch.allclose(d, want.values, atol=1e-4) and torch.equal(idx, want.indices)
    assert (idx >= 16384).any()  # some nearest rows lie in the second block


def test_memory_bank_guard_raises_before_building():
    with pytest.raises(ValueError, match=r"GiB.*max_bank_bytes"):
        check_bank_size(10_000, 384, limit=1_000_000, what="NNS memory bank")
    assert check_bank_size(10, 4, limit=1000) == 160
    from torchvision.models import resnet18
    nns = NNS(resnet18(weights=None), max_bank_bytes=1024)
    with pytest.raises(ValueError, match="NNS memory bank"):
        nns.fit(torch.rand(2, 3, 64, 64))
    assert nns.bank is None
    from glance_lite.baselines.gaussian import GaussianAD
    gauss = GaussianAD(resnet18(weights=None), max_bank_bytes=1024)
    with pytest.raises(ValueError, match=r"Gaussian training features .* statistics .*limit of 9\.54e-07 GiB"):
        gauss.fit(torch.rand(2, 3, 64, 64))
    assert gauss.mean is None
    x = torch.arange(7.0)
    assert torch.equal(fill_batches(lambda part: part * 2, x, 3), x * 2)


@pytest.mark.parametrize("value", [0, -1.5, float("nan"), float("inf"), None, "lots"])
def test_max_bank_gb_must_be_positive_and_finite(value):
    with pytest.raises(ValueError, match=r"--max-bank-gb must be a positive, finite number of GiB; got "):
        max_bank_bytes(value)
    assert max_bank_bytes(2) == DEFAULT_MAX_BYTES and max_bank_bytes(1e-12) == 1


# ----------------------------------------------------------------------------- Gaussian
def test_mahalanobis_equals_numpy_formula():
    rng = np.random.default_rng(1)
    n, p, d, lam = 12, 3, 4, 0.01
    train = rng.normal(size=(n, p, d)) * rng.uniform(0.5, 2.0, size=(1, p, d))
    test = rng.normal(size=(5, p, d))
    mean, chol = fit_gaussians(torch.from_numpy(train).float(), lam)
    got = mahalanobis(torch.from_numpy(test).float(), mean, chol).numpy()
    want = np.empty((5, p))
    for j in range(p):
        mu = train[:, j].mean(0)
        inv = np.linalg.inv(np.cov(train[:, j], rowvar=False) + lam * np.eye(d))
        diff = test[:, j] - mu
        want[:, j] = np.sqrt(np.einsum("nd,de,ne->n", diff, inv, diff))
    np.testing.assert_allclose(got, want, rtol=1e-4)


# ----------------------------------------------------------------------------- PSG
@pytest.mark.parametrize("scar", [False, True])
def test_cutpaste_changes_only_a_bounded_region(scar):
    images = torch.rand(6, 3, 64, 64)
    out, mask = cutpaste(images, torch.Generator().manual_seed(3), scar=scar)
    changed = (out != images).any(dim=1)
    assert not (changed & ~mask).any()                     # nothing outside the pasted box
    area = mask.flatten(1).sum(1).float()
    assert (area > 0).all()
    bound = 25 * 16 + 60 if scar else 0.15 * 64 * 64 * 1.1   # scar box <= 25x16 (+ rounding)
    assert (area <= bound).all()
    again, _ = cutpaste(images, torch.Generator().manual_seed(3), scar=scar)
    assert torch.equal(out, again)                         # seeded


def test_psg_batch_has_three_labelled_classes():
    x, y = psg_batch(torch.rand(4, 3, 32, 32), 2, torch.Generator().manual_seed(0))
    assert x.shape == (6, 3, 32, 32) and y.tolist() == [0, 0, 1, 1, 2, 2]


def test_psg_finetune_is_seeded_and_leaves_the_teacher_alone():
    from torchvision.models import resnet18
    from glance_lite.baselines.psg import psg_finetune
    net = resnet18(weights=None)
    net.fc = torch.nn.Identity()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images, losses = torch.rand(4, 3, 64, 64), []
    a = psg_finetune(net, images, steps=2, batch=1, seed=1, log=losses)
    b = psg_finetune(net, images, steps=2, batch=1, seed=1)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not torch.equal(a.conv1.weight, net.conv1.weight)


# ----------------------------------------------------------------------------- AMC
def test_amc_product_and_smoothing_on_a_toy_map():
    nns = torch.zeros(2, 32, 32)
    gauss = torch.zeros(2, 32, 32)
    nns[0, 10, 10] = 2.0          # NNS fires at (10,10) and (20,20) ...
    nns[0, 20, 20] = 2.0
    gauss[0, 10, 10] = 4.0        # ... the Gaussian only at (10,10): the product keeps that one
    norm_n, norm_g = MinMax(0.0, 2.0), MinMax(0.0, 4.0)
    raw = amc(nns, gauss, norm_n, norm_g, sigma=0)
    assert raw[0, 10, 10] == 1.0 and raw[0, 20, 20] == 0.0 and raw[1].abs().sum() == 0
    smooth = amc(nns, gauss, norm_n, norm_g, sigma=2)
    assert torch.isclose(smooth.sum(), raw.sum(), rtol=1e-3)      # blur keeps the mass
    assert smooth[0, 10, 10] < 1.0 and smooth[0, 10, 12] > 0      # and spreads it
    assert int(smooth[0].argmax()) == 10 * 32 + 10
    assert image_scores(smooth).tolist() == [float(smooth[0].max()), 0.0]
    # values below the training minimum are clipped, so two negatives never make a positive
    assert MinMax(1.0, 3.0)(torch.tensor([0.0, 2.0])).tolist() == [0.0, 0.5]
    np.testing.assert_allclose(gaussian_smooth(torch.ones(1, 8, 8), 4).numpy(), 1.0, rtol=1e-6)


# ----------------------------------------------------------------------------- compare
@pytest.fixture(scope="module")
def compared(synth_root, category, tmp_path_factory):
    """One smoke `compare` run: (out dir, its result, what it printed on stderr)."""
    import contextlib
    import io
    from glance_lite import teacher
    from glance_lite.baselines.compare import compare
    out = tmp_path_factory.mktemp("compare") / "cmp"
    err = io.StringIO()
    teacher._announced.clear()  # a fresh process, as far as the announcement goes
    with contextlib.redirect_stderr(err):
        res = compare(synth_root, category, out, profile="smoke", teacher="random", seed=0, device="cpu",
                      progress=False)
    return out, res, err.getvalue()


def test_compare_writes_the_contract(compared, synth_root, category):
    from glance_lite.baselines.compare import GLANCE_EXTRA, KEYS, METHODS, compare
    out, res, _ = compared
    data = json.loads((out / "comparison.json").read_text())
    assert data == json.loads(json.dumps(res))
    assert list(data) == ["glance", "local_only", "nns", "gaussian", "amc"] == list(METHODS)
    for name, m in data.items():
        assert set(m) == set(KEYS) | (set(GLANCE_EXTRA) if name == "glance" else set()), name
        assert m["seconds_per_image"] > 0 and {"structural", "logical"} >= set(m["per_kind"])
        assert all(v is None or 0 <= v <= 1 for v in (m["pro"], m["pixel_auroc"], m["image_auroc"]))
    settings = json.loads((out / "comparison_settings.json").read_text())
    assert settings["mffa"]["max_bank_bytes"] == DEFAULT_MAX_BYTES == 2 * GIB
    with pytest.raises(ValueError, match="overwrite"):
        compare(synth_root, category, out, profile="smoke", teacher="random", device="cpu", progress=False)


def test_compare_announces_an_untrained_teacher_once(compared):
    # compare and training.py both resolve the random teacher; the note must come once, not twice
    assert compared[2].count("NOTE: using an UNTRAINED ResNet-18 teacher (asked for)") == 1


def _compare_cli(root, category, out, *extra):
    from glance_lite.cli import main
    return main(["compare", "--data", str(root), "--category", category, "--out", str(out),
                 "--profile", "smoke", "--teacher", "random", "--device", "cpu", *extra])


@pytest.mark.parametrize("bank", ["local-only memory bank", "NNS memory bank", "Gaussian training features"])
def test_compare_max_bank_gb_reaches_every_bank_before_anything_is_written(
        synth_root, category, tmp_path, capsys, bank):
    from torchvision.models import resnet18
    from glance_lite.baselines.local_only import local_bank_bytes
    from glance_lite.baselines.mffa import MFFALite, settings_for
    from glance_lite.data import load_mvtec
    from glance_lite.patches import PatchGrid
    from glance_lite.profiles import get_profile
    n = len(load_mvtec(synth_root, category, "train"))
    mffa = MFFALite(resnet18(weights=None), settings_for("smoke"))
    sizes = {"local-only memory bank": local_bank_bytes(n, PatchGrid(per_side=get_profile("smoke").grid_per_side)),
             "NNS memory bank": mffa.nns.bank_bytes(n), "Gaussian training features": mffa.gauss.bank_bytes(n)}
    assert list(sizes.values()) == sorted(sizes.values())  # checked in this order: each limit hits one bank
    limit_gb = 0.9 * sizes[bank] / GIB
    out = tmp_path / "cmp"
    rc = _compare_cli(synth_root, category, out, "--max-bank-gb", repr(limit_gb))
    err = capsys.readouterr().err
    assert rc == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"glance-lite: error: the {bank}")
    assert f"= {gib(sizes[bank])}, above the limit of {gib(max_bank_bytes(limit_gb))}." in line
    assert "--max-bank-gb" in line
    assert not out.exists()  # failed before training or writing anything
    assert err.count("NOTE: using an UNTRAINED") == 1


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_compare_rejects_a_bad_max_bank_gb(tmp_path, capsys, value):
    rc = _compare_cli(tmp_path / "no-data", "fabric", tmp_path / "cmp", "--max-bank-gb", value)
    assert rc == 1 and not (tmp_path / "cmp").exists()
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"glance-lite: error: --max-bank-gb must be a positive, finite number of GiB; got {float(value)!r}")
    with pytest.raises(SystemExit) as exc:
        _compare_cli(tmp_path / "no-data", "fabric", tmp_path / "cmp", "--max-bank-gb", "lots")
    assert exc.value.code == 2 and "invalid float value: 'lots'" in capsys.readouterr().err


def test_compare_help(capsys):
    from glance_lite.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--category" in text and "--overwrite" in text and "--teacher" in text
    assert "--max-bank-gb" in text and "(default 2)" in " ".join(text.split())
    assert DEFAULT_MAX_BYTES == 2 * GIB  # the default the help names
    from importlib.metadata import entry_points
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("glance-lite") == "glance_lite.cli:main"  # the installed command runs main()
