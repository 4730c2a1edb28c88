import os
import warnings

import pytest

os.environ.setdefault("GLANCE_PROFILE", "smoke")
warnings.filterwarnings("ignore", message=".*UNTRAINED TEACHER.*")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny synthetic MVTec-format dataset (smoke size), shared by the pipeline tests."""
    from glance_lite.data import make_synthetic
    from glance_lite.profiles import get_profile
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic(root, seed=0, **dict(get_profile("smoke").synthetic))


@pytest.fixture(scope="session")
def category():
    from glance_lite.data import SYNTHETIC_CATEGORIES
    return SYNTHETIC_CATEGORIES[0]
