"""Tests for glance_lite.metrics (AU-PRO of paper Sec. 4.2, AUROCs, evaluate_maps)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from glance_lite.metrics import (au_pro, evaluate_maps, image_auroc, image_scores,
                                 pixel_auroc, pro_curve, pro_reference)


def blobs(n: int, size: int, frac: float, rng: np.random.Generator) -> np.ndarray:
    """(n, size, size) bool masks with 1-4 random disks in about ``frac`` of the images."""
    masks = np.zeros((n, size, size), bool)
    yy, xx = np.mgrid[:size, :size]
    for i in rng.choice(n, max(1, int(n * frac)), replace=False):
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.integers(0, size, 2)
            r = rng.integers(2, max(3, size // 8))
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return masks


def random_case(rng: np.random.Generator):
    """Small random masks (several regions) and scores, often quantised to create ties."""
    n, h, w = rng.integers(1, 4), rng.integers(2, 9), rng.integers(2, 9)
    masks = rng.random((n, h, w)) < rng.uniform(0.1, 0.5)
    masks.flat[rng.integers(masks.size)] = True                 # >= 1 anomalous pixel
    masks.flat[rng.integers(masks.size)] ^= masks.all()         # >= 1 normal pixel
    if rng.random() < 0.6:
        maps = rng.integers(0, rng.integers(2, 8), masks.shape) / 7.0   # few levels: ties
    else:
        maps = rng.random(masks.shape)
    return masks, maps + 0.3 * masks * rng.random()


# ------------------------------------------------------------------- known values
def test_perfect_map_scores_one():
    masks = blobs(6, 32, 0.5, np.random.default_rng(0))
    assert au_pro(masks, masks.astype(float)) == pytest.approx(1.0, abs=1e-12)


def test_uniform_random_map_scores_about_015():
    # PRO ~= FPR for random scores: area under the diagonal up to 0.3 is 0.045, / 0.3 = 0.15
    rng = np.random.default_rng(1)
    masks = blobs(40, 128, 0.5, rng)
    maps = rng.random(masks.shape, dtype=np.float32)
    assert au_pro(masks, maps) == pytest.approx(0.15, abs=0.01)


MASK_2X3 = np.array([[[1, 1, 0], [0, 0, 0]]], bool)     # one region of 2 px, 4 normal px


def test_hand_computed_2x3():
    # descending: .9 N -> (FPR .25, PRO 0); .8 A -> (.25, .5); .6 N -> (.5, .5); .4 A -> (.5, 1)
    # cut at .3 on the flat piece (PRO .5): area = .05 * .5 = .025, / .3 = 1/12
    maps = np.array([[[0.8, 0.4, 0.9], [0.6, 0.1, 0.2]]])
    assert au_pro(MASK_2X3, maps) == pytest.approx(1 / 12, abs=1e-12)
    fpr, pro = pro_curve(MASK_2X3, maps)
    np.testing.assert_allclose(fpr, [0, 0.25, 0.25, 0.3])
    np.testing.assert_allclose(pro, [0, 0, 0.5, 0.5])


def test_hand_computed_ties_enter_together():
    # a normal pixel ties the anomalous .8: both enter at once, (.25, 0) -> (.5, .5) is one
    # segment; PRO(.3) = .1, area = .05 * (0 + .1) / 2 = .0025, / .3 = 1/120
    # (normal-first tie breaking would give 0, anomalous-first 1/12)
    maps = np.array([[[0.8, 0.4, 0.9], [0.8, 0.1, 0.2]]])
    assert au_pro(MASK_2X3, maps) == pytest.approx(1 / 120, abs=1e-12)
    assert pro_reference(MASK_2X3, maps) == pytest.approx(1 / 120, abs=1e-12)


def test_diagonal_pixels_form_one_region():
    # 8-connected regions: A = {(0,0), (1,1)} (diagonal pair), B = {(0,3)}.
    # Scores: A: .9 and .2, B: .8, all normal pixels .5.
    # t=.9: PRO = (1/2 + 0)/2 = .25; t=.8: PRO = (1/2 + 1)/2 = .75 at FPR 0; flat until FPR 1
    # -> AU-PRO = .75 (4-connectivity would give 3 regions and 2/3)
    masks = np.zeros((1, 3, 4), bool)
    masks[0, 0, 0] = masks[0, 1, 1] = masks[0, 0, 3] = True
    maps = np.full(masks.shape, 0.5)
    maps[0, 0, 0], maps[0, 1, 1], maps[0, 0, 3] = 0.9, 0.2, 0.8
    assert au_pro(masks, maps) == pytest.approx(0.75, abs=1e-12)


def test_regions_do_not_connect_across_images():
    # same pixel location in two images = two regions (1 px high, 2 px low) -> PRO .5
    masks = np.zeros((2, 2, 3), bool)
    masks[0, 0, 0] = masks[1, 0, 0] = masks[1, 0, 1] = True
    maps = np.where(masks, 0.1, 0.5)
    maps[0, 0, 0] = 0.9
    assert au_pro(masks, maps) == pytest.approx(0.5, abs=1e-12)


# ------------------------------------------------------------------- vs reference
@pytest.mark.parametrize("seed", range(30))
def test_agrees_with_reference(seed):
    rng = np.random.default_rng(seed)
    masks, maps = random_case(rng)
    for limit in (0.3, 0.05, 0.5, 1.0):
        assert au_pro(masks, maps, limit) == pytest.approx(
            pro_reference(masks, maps, limit), abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), levels=st.integers(1, 5),
       limit=st.floats(0.01, 1.0))
def test_agrees_with_reference_hypothesis(seed, levels, limit):
    rng = np.random.default_rng(seed)
    masks, _ = random_case(rng)
    maps = rng.integers(0, levels + 1, masks.shape).astype(np.float32)
    assert au_pro(masks, maps, limit) == pytest.approx(
        pro_reference(masks, maps, limit), abs=1e-6)


def test_curve_shape_and_area():
    rng = np.random.default_rng(7)
    masks, maps = random_case(rng)
    fpr, pro = pro_curve(masks, maps, 0.3)
    assert fpr[0] == 0 and pro[0] == 0 and fpr[-1] == pytest.approx(0.3)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= -1e-12)
    assert np.trapezoid(pro, fpr) / 0.3 == pytest.approx(au_pro(masks, maps), abs=1e-12)


def test_invariant_to_monotone_transform_and_dtype():
    rng = np.random.default_rng(3)
    masks = blobs(8, 24, 0.5, rng)
    levels = rng.integers(0, 50, masks.shape) + 10 * masks     # integer scores with ties
    maps = levels / 49.0
    base = au_pro(masks, maps)
    for f in (np.exp, lambda x: x ** 3 + 5, lambda x: 2 * x - 7):
        assert au_pro(masks, f(maps)) == pytest.approx(base, abs=1e-12)
    assert au_pro(masks.astype(np.uint8), maps.astype(np.float32)) == pytest.approx(base, abs=1e-9)
    assert au_pro(masks, levels) == pytest.approx(base, abs=1e-12)


# ------------------------------------------------------------------- AUROCs
def test_aurocs_match_sklearn():
    rng = np.random.default_rng(4)
    masks = blobs(10, 32, 0.5, rng)
    maps = rng.random(masks.shape) + 0.5 * masks
    assert pixel_auroc(masks, maps) == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)
    scores = image_scores(maps)
    np.testing.assert_array_equal(scores, maps.max(axis=(1, 2)))
    labels = masks.any(axis=(1, 2)).astype(int)
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


# ------------------------------------------------------------------- evaluate_maps
def test_evaluate_maps_per_defect_and_kind():
    rng = np.random.default_rng(5)
    masks = blobs(12, 32, 1.0, rng)
    labels = np.array([0] * 4 + [1] * 8)
    masks[:4] = False
    masks[10:] = False                                      # "logic" images: no mask pixels
    defects = ["good"] * 4 + ["crack"] * 3 + ["hole"] * 3 + ["logic"] * 2
    maps = rng.random(masks.shape) + 0.5 * masks
    kinds = {"crack": "structural", "hole": "structural", "logic": "logical"}
    res = evaluate_maps(masks, maps, labels, defects, kinds)
    json.dumps(res)
    assert res["pro"] == pytest.approx(au_pro(masks, maps))
    assert res["pixel_auroc"] == pytest.approx(pixel_auroc(masks, maps))
    assert set(res["per_defect"]) == {"crack", "hole", "logic"}
    idx = np.r_[0:4, 4:7]
    crack = res["per_defect"]["crack"]
    assert crack["n_images"] == 3
    assert crack["pro"] == pytest.approx(au_pro(masks[idx], maps[idx]))
    assert crack["image_auroc"] == pytest.approx(
        image_auroc(labels[idx], image_scores(maps[idx])))
    logic = res["per_defect"]["logic"]
    assert logic["pro"] is None and logic["pixel_auroc"] is None
    assert isinstance(logic["image_auroc"], float)
    assert res["per_kind"]["structural"]["n_images"] == 6
    idx = np.r_[0:10]
    assert res["per_kind"]["structural"]["pro"] == pytest.approx(au_pro(masks[idx], maps[idx]))
    with pytest.raises(ValueError, match="at least one anomalous pixel"):
        evaluate_maps(np.zeros_like(masks), maps, labels, defects)


# ------------------------------------------------------------------- bad inputs
GOOD_M, GOOD_X = MASK_2X3, np.arange(6.0).reshape(1, 2, 3)


@pytest.mark.parametrize("masks, maps, limit, message", [
    (GOOD_M, GOOD_X[:, :, :2], 0.3, "same shape; got (1, 2, 3) and (1, 2, 2)"),
    (GOOD_M[0], GOOD_X[0], 0.3, "expected 3-D arrays (N, H, W); got masks.ndim=2"),
    (GOOD_M, np.where(GOOD_M, np.nan, GOOD_X), 0.3, "expected finite scores in maps; got 2 NaN"),
    (GOOD_M, np.where(GOOD_M, np.inf, GOOD_X), 0.3, "and 2 inf values"),
    (GOOD_M * 2, GOOD_X, 0.3, "expected binary masks (bool or 0/1); got values such as [2]"),
    (np.zeros_like(GOOD_M), GOOD_X, 0.3, "expected at least one anomalous pixel"),
    (np.ones_like(GOOD_M), GOOD_X, 0.3, "expected at least one normal pixel"),
    (GOOD_M, GOOD_X, 0.0, "expected limit in (0, 1]; got 0.0"),
    (GOOD_M, GOOD_X, 1.5, "expected limit in (0, 1]; got 1.5"),
])
def test_bad_inputs_raise(masks, maps, limit, message):
    for fn in (au_pro, pro_curve, pro_reference):
        with pytest.raises(ValueError) as err:
            fn(masks, maps, limit)
        assert message in str(err.value)
    if limit == 0.3:
        with pytest.raises(ValueError, match="expected"):
            pixel_auroc(masks, maps)


def test_bad_image_inputs_raise():
    with pytest.raises(ValueError, match="expected both classes"):
        image_auroc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match=r"same length; got shapes \(3,\) and \(2,\)"):
        image_auroc([0, 1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="expected labels in"):
        image_auroc([0, 2], [0.2, 0.3])
    with pytest.raises(ValueError, match="expected maps of shape"):
        image_scores(np.zeros((2, 2)))


# ------------------------------------------------------------------- timing
@pytest.mark.slow
def test_timing_full_mvtec_size(request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("timing print only; run with -m slow")
    rng = np.random.default_rng(0)
    masks = blobs(1725, 256, 1 / 3, rng)
    maps = rng.random(masks.shape, dtype=np.float32) + 0.5 * masks
    start = time.perf_counter()
    value = au_pro(masks, maps)
    print(f"\nau_pro on {masks.shape}: {time.perf_counter() - start:.2f} s (value {value:.4f})")


def test_paper_tables_are_copied_consistently():
    """Every published table's "Mean" row is the mean of its 15 categories (to the paper's rounding),
    so a mistyped number shows; side_by_side puts our values beside the paper's."""
    from glance_lite.paper import paper_tables, side_by_side
    tabs = paper_tables()
    assert set(tabs) == {"tab1", "tab2", "tab3", "tab4", "supp_tab4"}
    for name, tab in tabs.items():
        rows = {k: v for k, v in tab["rows"].items() if k != "Mean"}
        assert len(rows) == (10 if name == "tab3" else 15) and all(len(v) == len(tab["columns"]) for v in tab["rows"].values()), name
        means = np.array(list(rows.values())).mean(0)
        assert np.abs(means - np.array(tab["rows"]["Mean"])).max() <= 0.011, name
    md = side_by_side("tab1", {"circuit (synthetic)": 0.9, "tire (real)": None}, "this run")
    assert "| **circuit (synthetic)** | – | – | **0.900** |" in md and "**tire (real)**" in md
    assert "TS (paper)" in md and "Glance (paper)" in md and "mean of 5 textures" in md
