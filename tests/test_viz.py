"""The book's figure helpers (glance_lite.viz_book), on small random tensors."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from glance_lite.viz_book import (image_grid, loss_curves, map_grid, mask_plan_figure, pro_curve_figure,
                                  r2_bars, raster_grid_figure, score_histograms)


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_image_grid_has_one_axes_per_cell_titles_and_row_labels():
    g = torch.Generator().manual_seed(0)
    rows = [[torch.rand(3, 33, 33, generator=g) for _ in range(3)], [torch.rand(3, 33, 33, generator=g)]]
    fig = image_grid(rows, titles=[["a", "b", "c"], ["d"]], row_labels=["top", "bottom"], title="T")
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert _titles(fig)[:4] == ["a", "b", "c", "d"]
    assert [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["top", "bottom"]
    assert not fig.axes[4].axison and fig._suptitle.get_text() == "T"   # the short row's spare cell is blank
    assert len(fig.axes[0].images) == 1 and fig.axes[0].images[0].get_array().shape == (33, 33, 3)


def test_loss_curves_one_panel_per_phase_raw_and_smoothed_and_missing_phases_say_so():
    log = {"distill": {"step": np.arange(50), "l_k": np.random.rand(50) + 0.1, "l_c": np.random.rand(50) + 0.1}}
    fig = loss_curves(log, [("distill", ("l_k", "l_c")), ("finetune", ("l_k", "l_c"))],
                      titles=["Local-Net, distill", "Local-Net, finetune"])
    assert len(fig.axes) == 2 and _titles(fig) == ["Local-Net, distill", "Local-Net, finetune"]
    assert len(fig.axes[0].lines) == 4 and fig.axes[0].get_yscale() == "log"
    assert len(fig.axes[0].lines[1].get_xdata()) == 50 - 25 + 1          # the moving average is shorter
    assert "no 'finetune' steps" in fig.axes[1].texts[0].get_text()
    fig = loss_curves(log, [("distill", ("l_k",)), ("distill", ("l_c",))], log_scale=[True, False])
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "linear"]


def test_score_histograms_draws_one_histogram_per_group():
    fig = score_histograms({"real p": torch.rand(40), "stained p-": np.random.rand(40)}, "s_DAD", title="AUROC")
    ax, = fig.axes
    assert ax.get_title() == "AUROC" and ax.get_xlabel() == "s_DAD"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["real p", "stained p-"]
    assert len(ax.patches) == 2 * 30


def test_r2_bars_puts_global_net_on_top_in_colour():
    names = {"r2_global": "Global-Net", "r2_position_mean": "position mean", "r2_constant": "constant"}
    fig = r2_bars({"r2_global": 0.9, "r2_position_mean": 0.7, "r2_constant": -0.01}, names, title="circuit")
    ax, = fig.axes
    bars = ax.patches
    assert len(bars) == 3 and ax.get_title() == "circuit"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["constant", "position mean", "Global-Net"]
    assert bars[-1].get_width() == pytest.approx(0.9) and bars[-1].get_facecolor() != bars[0].get_facecolor()


def test_raster_grid_figure_marks_every_centre_and_the_chosen_patches():
    tl = torch.tensor([[0, 0], [0, 12], [12, 0], [12, 12]])
    fig = raster_grid_figure(torch.rand(3, 64, 64), tl, tl.float() + 16, boxes=[0, 3], title="grid")
    ax, = fig.axes
    assert len(ax.patches) == 2 and ax.patches[1].get_xy() == (12, 12)
    assert len(ax.lines[0].get_xdata()) == 4 and ax.get_title() == "grid"


def test_map_grid_lays_out_image_column_maps_and_colorbars():
    n = 2
    maps = {"Glance": torch.rand(n, 16, 16), "local only": np.random.rand(n, 16, 16)}
    masks = torch.zeros(n, 16, 16)
    masks[:, 4:8, 4:8] = 1
    fig = map_grid(maps, images=torch.rand(n, 3, 16, 16), masks=masks, row_titles=["swap", "cut"],
                   colorbar=["Glance"])
    assert len(fig.axes) == n * 3 + n                                   # 2 x 3 panels + one colour bar per row
    assert _titles(fig)[:6] == ["swap", "Glance", "local only", "cut", "Glance", "local only"]
    assert len(fig.axes[0].collections) > 0                             # the ground truth is outlined
    fig = map_grid({"a": torch.rand(1, 8, 8), "b": torch.rand(1, 8, 8)}, cmap={"a": "gray"}, limits=(0, 1))
    assert len(fig.axes) == 2 and fig.axes[0].images[0].get_cmap().name == "gray"
    assert fig.axes[1].images[0].get_clim() == (0, 1)


def test_mask_plan_figure_titles_give_size_and_hole():
    m0 = torch.ones(32, 32)
    m0[8:16, 8:16] = 0
    small = torch.ones(8, 8)
    small[3, 3] = 0
    fig = mask_plan_figure(m0[None, None], [small, torch.ones(4, 4), torch.ones(1, 1, 1, 1)],
                           ["pconv0", "pconv1", "pconv4"])                  # the last mask is 1x1
    assert _titles(fig) == ["M0 32x32\nhole: 64 px", "pconv0 8x8\nhole: 1 px", "pconv1 4x4\nhole: 0 px",
                            "pconv4 1x1\nhole: 0 px"]


def test_pro_curve_figure_draws_every_curve_and_the_limit():
    f = np.linspace(0, 0.35, 20)
    fig = pro_curve_figure({"exact": (f, f ** 0.5), "by hand": (f, f ** 0.6)}, fpr_limit=0.3)
    ax, = fig.axes
    assert len(ax.lines) == 3 and ax.lines[1].get_linestyle() == "--"
    assert ax.lines[2].get_xdata()[0] == pytest.approx(0.3) and "0.3" in ax.get_title()
