import os

import pytest

os.environ.setdefault("GLANCE_PROFILE", "smoke")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A tiny synthetic MVTec-format dataset (smoke size), shared by the pipeline tests."""
    from glance_lite.data import make_synthetic
    from glance_lite.profiles import get_profile
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic(root, seed=0, **dict(get_profile("smoke").synthetic))


@pytest.fixture(scope="session")
def load_benchmark():
    """`load_benchmark("accuracy")` -> the module benchmarks/accuracy.py (not a package)."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    return load


@pytest.fixture(scope="session")
def category():
    from glance_lite.data import SYNTHETIC_CATEGORIES
    return SYNTHETIC_CATEGORIES[0]


def pytest_collection_modifyitems(config, items):
    """The book build and the browser are the slow part of the suite: mark them `slow`, so that
    `pytest -m "not slow"` is the quick loop (README, "Development")."""
    for item in items:
        if "book_html" in getattr(item, "fixturenames", ()) or item.module.__name__ == "test_browser":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def fresh_teacher_announcement():
    """teacher.resolve_teacher announces an untrained teacher once per process; every test is
    one "process" here, so a test that checks the announcement does not depend on the order."""
    from glance_lite import teacher
    teacher._announced.clear()
    yield

