"""glance_lite.explorer: the lambda_s explorer's data, read back from an evaluation folder."""
import types

import numpy as np
import pytest
import torch

from glance_lite.explorer import ExplorerData


def test_from_eval_dir_matches_images_by_split_defect_file_not_absolute_path(tmp_path):
    """A data folder moved (or a run copied to another clone) still matches its scores; other
    images do not."""
    n, k2 = 2, 36
    paths = [f"/old/place/circuit/test/{d}/000.png" for d in ("good", "swap")]
    np.savez_compressed(tmp_path / "scores.npz", s_iad=np.random.rand(n, k2).astype(np.float32),
                        s_dad=np.random.rand(n, k2).astype(np.float32), labels=np.array([0, 1]),
                        defects=np.array(["good", "swap"]), paths=np.array(paths), grid_align=2)
    split = types.SimpleNamespace(paths=[p.replace("/old/place", "/new/home") for p in paths],
                                  masks=torch.zeros(n, 1, 256, 256), labels=torch.tensor([0, 1]),
                                  defects=["good", "swap"], images=torch.rand(n, 3, 256, 256))
    data = ExplorerData.from_eval_dir(tmp_path, split)
    assert data is not None
    split.paths = [p.replace("000.png", "001.png") for p in split.paths]
    with pytest.raises(ValueError, match="other images than this split"):
        ExplorerData.from_eval_dir(tmp_path, split)
