"""The teaching book: its sources, the lambda_s explorer, and one full build with -W.

The build runs every chapter with GLANCE_PROFILE=smoke in a temporary copy of the book
(`_config.yml`, `_toc.yml`, `book/`), so the repository's `data/`, `runs/` and `_build/` are not
touched. It is done once per test session (`built_book()`), and tests/test_browser.py opens the
same HTML. Skipped with a reason when jupyter-book is not installed (`pip install -e ".[book]"`).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
BUILD_LIMIT_S = 20 * 60  # the whole smoke build must stay well below this on 2 cores


def toc_files() -> list[str]:
    """Every file named in _toc.yml (root first), without extension."""
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the book extra: pip install -e '.[book]'")
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def pages() -> list[Path]:
    """Every page of the toc: a notebook, or a MyST Markdown page (book/references.md)."""
    return [ROOT / f"{f}.ipynb" if (ROOT / f"{f}.ipynb").exists() or not (ROOT / f"{f}.md").exists()
            else ROOT / f"{f}.md" for f in toc_files()]


def chapters() -> list[Path]:
    """The notebook pages (every one starts with the setup cell)."""
    return [p for p in pages() if p.suffix == ".ipynb"]


def numbered_chapters() -> list[Path]:
    """Chapters 1-10 and the appendices: learning goals, exercises, summaries."""
    return [p for p in chapters() if p.name[:2].isdigit() and p.name[:2] != "00" or "appendix" in p.name]


def jupyter_book_cmd() -> list[str] | None:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    return [found] if found else None


def _skip_without_jupyter_book():
    pytest.importorskip("jupyter_book", reason="jupyter-book is not installed: pip install -e '.[book]'")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed: pip install -e '.[book]'")
    if jupyter_book_cmd() is None:
        pytest.skip("the jupyter-book command is not on PATH")


@lru_cache(maxsize=1)
def built_book() -> tuple[Path, float, str]:
    """Build the book once (smoke profile) into a temporary folder -> (html dir, seconds, log)."""
    tmp = Path(tempfile.mkdtemp(prefix="glance-book-"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp / name)
    shutil.copytree(BOOK, tmp / "book", ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints",
                                                                      "__pycache__"))
    print(f"building the book (smoke profile) in {tmp} ...")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLANCE_LIVE", "GLANCE_TEACHER", "GLANCE_BOOK_ROOT", "GLANCE_HOME")}
    env.update(GLANCE_PROFILE="smoke", PYTHONWARNINGS="ignore::DeprecationWarning", TQDM_DISABLE="1")
    t0 = time.perf_counter()
    proc = subprocess.run(jupyter_book_cmd() + ["build", str(tmp), "-W", "--keep-going", "--all"], env=env,
                          capture_output=True, text=True, timeout=BUILD_LIMIT_S)
    seconds = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    (tmp / "build.log").write_text(log)
    if proc.returncode != 0:
        tail = "\n".join(log.splitlines()[-80:])
        raise AssertionError(f"jupyter-book build -W failed (exit {proc.returncode}, {seconds:.0f} s); "
                             f"full log in {tmp / 'build.log'}:\n{tail}")
    return tmp / "_build" / "html", seconds, log


@pytest.fixture(scope="session")
def book_html() -> Path:
    _skip_without_jupyter_book()
    return built_book()[0]


# ----------------------------------------------------------------------------- sources
def test_toc_names_only_existing_notebooks():
    files = pages()
    assert len(chapters()) >= 12, "preface, chapters 1-11 and the appendix"
    missing = [str(f) for f in files if not f.is_file()]
    assert not missing, f"_toc.yml names missing pages: {missing}"


def test_notebooks_are_committed_without_outputs():
    nbformat = pytest.importorskip("nbformat", reason="nbformat comes with the book extra")
    for path in sorted(BOOK.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, \
                    f"{path.name} cell {i} carries outputs; strip them before committing"


def test_every_chapter_starts_with_the_setup_cell():
    nbformat = pytest.importorskip("nbformat", reason="nbformat comes with the book extra")
    for path in chapters():
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        src = first.source
        assert '"google.colab" in sys.modules' in src and "%pip install -q git+" in src, path.name
        assert "GLANCE_PROFILE" in src and "book_setup()" in src, path.name
        assert "hide-input" in first.metadata.get("tags", []), path.name


def test_repository_url_is_written_in_one_place():
    """_config.yml's repository.url is the source; the Colab install lines must agree with it."""
    pytest.importorskip("nbformat", reason="nbformat comes with the book extra")
    pytest.importorskip("yaml", reason="PyYAML comes with the book extra")
    proc = subprocess.run([sys.executable, str(BOOK / "_tools" / "sync_repo_url.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chapters_have_goals_and_exercises_with_solutions():
    """Every chapter (not the notation page) states goals; every numbered chapter has >= 2
    exercises (sphinx-exercise), each with exactly one hidden solution carrying its label, and a
    summary."""
    nbformat = pytest.importorskip("nbformat", reason="nbformat comes with the book extra")
    for path in chapters():
        if path.stem == "notation":
            continue
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert re.search(r"learning goals", text, re.I), f"{path.name}: no learning goals"
        labels = re.findall(r"```\{exercise\}[^\n]*\n(?::[^\n]*\n)*?:label: (\S+)", text)
        solved = re.findall(r"```\{solution(?:-start)?\} (\S+)", text)
        assert "admonition} Exercise" not in text, f"{path.name}: an exercise outside sphinx-exercise"
        assert sorted(labels) == sorted(solved), f"{path.name}: exercises {labels} vs solutions {solved}"
        assert text.count("{solution-start}") == text.count("{solution-end}"), f"{path.name}: open solution"
        if path in numbered_chapters() and "appendix_b" not in path.name:
            assert re.search(r"^## Summary", text, re.M), f"{path.name}: no summary"
        if "appendix" not in path.name:
            assert len(labels) >= 2, f"{path.name}: {len(labels)} exercises, want >= 2"


def test_no_paper_numbers_are_presented_as_ours():
    """Tables copied from the paper must say so in their header."""
    nbformat = pytest.importorskip("nbformat", reason="nbformat comes with the book extra")
    nb = nbformat.read(BOOK / "07_evaluation.ipynb", as_version=4)
    src = "\n".join(c.source for c in nb.cells)
    assert "paper_tables" in src and "side_by_side" in src and "paper" in src.lower()  # headers: tests/test_metrics.py


# ----------------------------------------------------------------------------- explorer
def _toy_explorer():
    from glance_lite.explorer import ExplorerData
    from glance_lite.patches import PatchGrid
    from glance_lite.scoring import PatchScores
    g = PatchGrid(per_side=6)
    gen = torch.Generator().manual_seed(0)
    n = 5
    masks = torch.zeros(n, 1, 256, 256)
    masks[2:, :, 96:160, 96:160] = 1
    s_iad, s_dad = torch.rand(n, 36, generator=gen), torch.rand(n, 36, generator=gen)
    images = torch.rand(n, 3, 256, 256, generator=gen)
    scores = PatchScores(s_iad, s_dad, g)
    data = ExplorerData.from_scores(scores, masks, torch.tensor([0, 0, 1, 1, 1]),
                                    ["good", "good", "swap", "stain", "swap"], images)
    return data, scores


def test_explorer_maps_equal_idw_of_the_combined_scores():
    data, scores = _toy_explorer()
    for lam in (0.0, 0.3, 0.8, 1.0):
        np.testing.assert_allclose(data.maps(lam), scores.maps(lam).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        data.maps(1.5)


def test_explorer_frames_and_player_are_self_contained():
    from glance_lite.explorer import html_player, lambda_frames
    data, _ = _toy_explorer()
    player = lambda_frames(data, lambdas=[0.0, 0.5, 1.0])
    assert [f["lambda_s"] for f in player["frames"]] == [0.0, 0.5, 1.0]
    assert len({f["src"] for f in player["frames"]}) == 3, "different lambda_s must give different maps"
    assert all(f["src"].startswith("data:image/png;base64,") for f in player["frames"])
    assert player["labels"] == ["swap", "stain", "swap"]  # one per defect type first
    assert all(0.0 <= f["pro"] <= 1.0 for f in player["frames"])
    html = html_player(player, uid="p1")
    assert 'id="p1"' in html and 'type="range"' in html
    # no external resource of any kind: no http(s) URL anywhere in the snippet
    assert not re.search(r"https?://", html), "the player must not load anything from the network"
    assert "<script src" not in html


def test_explorer_is_static_unless_live(monkeypatch):
    from glance_lite import explorer
    monkeypatch.delenv("GLANCE_LIVE", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert not explorer.is_live()
    monkeypatch.setenv("GLANCE_LIVE", "1")
    assert explorer.is_live()


def test_book_setup_finds_the_root_and_names_folders(tmp_path, monkeypatch):
    from glance_lite import explorer
    (tmp_path / "_config.yml").write_text("title: x\n")
    (tmp_path / "_toc.yml").write_text("root: a\n")
    (tmp_path / "book").mkdir()
    monkeypatch.chdir(tmp_path / "book")
    monkeypatch.delenv("GLANCE_BOOK_ROOT", raising=False)
    monkeypatch.delenv("GLANCE_TEACHER", raising=False)
    monkeypatch.delenv("GLANCE_HOME", raising=False)
    monkeypatch.setenv("GLANCE_PROFILE", "smoke")
    setup = explorer.book_setup(quiet=True)
    assert setup.root == tmp_path
    assert setup.teacher == "random" and "UNTRAINED" in setup.summary()
    assert setup.data_root == tmp_path / "data" / "synthetic-smoke"
    assert setup.run_dir("fabric") == tmp_path / "runs" / "book" / "smoke-random" / "fabric"
    # persistence on Colab: $GLANCE_HOME (a mounted Drive folder) holds data and runs
    monkeypatch.setenv("GLANCE_HOME", str(tmp_path / "drive"))
    assert setup.data_root == tmp_path / "drive" / "data" / "synthetic-smoke"
    assert setup.run_dir("fabric") == tmp_path / "drive" / "runs" / "book" / "smoke-random" / "fabric"


# ----------------------------------------------------------------------------- the build
def test_book_builds_with_warnings_as_errors(book_html):
    html, seconds, log = built_book()
    print(f"smoke build of the whole book: {seconds:.0f} s")
    assert seconds < BUILD_LIMIT_S
    for f in toc_files():
        page = html / f"{f}.html"
        assert page.is_file(), f"no page for {f}"
    index = (html / "index.html").read_text()
    assert "00_preface" in index or "Preface" in index


def test_built_pages_show_no_errors_and_no_widget_views(book_html):
    for f in toc_files():
        page = (book_html / f"{f}.html").read_text()
        assert "Traceback (most recent call last)" not in page, f"{f}: a traceback in the output"
        assert "application/vnd.jupyter.widget-view+json" not in page, \
            f"{f}: an ipywidgets view in the static HTML (its JavaScript would come from a CDN)"
        assert "unpkg.com" not in page and "require.min.js" not in page, f"{f}: widget JavaScript from a CDN"
        external = re.findall(r'<script[^>]+src="(https?://[^"]+)"', page)
        assert not external, f"{f}: scripts loaded from the network: {external}"


# figures every chapter must show in the built HTML (plt.show() output embedded as <img>)
MIN_FIGURES = {"book/01_task_and_data": 2, "book/02_local_net": 2, "book/03_partial_conv": 3,
               "book/04_global_net_iad": 2, "book/05_negatives_dad": 2, "book/06_scoring_maps": 5,
               "book/07_evaluation": 2, "book/08_tsne": 1, "book/09_one_class": 3,
               "book/10_global_vs_local": 1, "book/11_what_it_takes": 1}


def test_chapters_show_their_figures(book_html):
    for f, n in MIN_FIGURES.items():
        page = (book_html / f"{f}.html").read_text()
        imgs = len(re.findall(r'<img[^>]+src="(?:\.\./)?_images/', page)) + page.count('src="data:image/png')
        assert imgs >= n, f"{f}: {imgs} figures in the HTML, expected at least {n} (is matplotlib inline?)"


def test_the_setup_output_says_which_teacher_was_used(book_html):
    page = (book_html / "book" / "00_preface.html").read_text()
    assert "UNTRAINED" in page and "teacher" in page
    for f in toc_files():  # every notebook page shows the notice as a warning admonition
        if (ROOT / f"{f}.ipynb").exists():
            page = (book_html / f"{f}.html").read_text()
            assert re.search(r'class="[^"]*\bwarning\b[^"]*"[^>]*>\s*<p class="admonition-title">Untrained teacher',
                             page), f"{f}: no untrained-teacher warning admonition"


def test_chapter_2_says_which_distillation_images_were_used(book_html):
    page = (book_html / "book" / "02_local_net.html").read_text()
    assert "Local-Net distilled on: sklearn" in page  # offline smoke build: the bundled photographs


def test_the_lambda_explorer_is_in_the_html(book_html):
    pages = [f for f in toc_files() if 'class="glance-lambda"' in (book_html / f"{f}.html").read_text()]
    assert "book/06_scoring_maps" in pages, pages


# ----------------------------------------------------------------------------- book helpers
def test_tsne_dissimilarities_are_proper():
    from glance_lite import DADHead
    from glance_lite.tsne import dad_dissimilarity, embed, iad_dissimilarity, separation
    torch.manual_seed(0)
    feats = torch.randn(12, 128)
    for d in (iad_dissimilarity(feats), dad_dissimilarity(DADHead(), feats)):
        assert d.shape == (12, 12) and np.allclose(d, d.T) and np.all(np.diag(d) == 0) and (d >= 0).all()
    np.testing.assert_allclose(iad_dissimilarity(feats)[0, 1], ((feats[0] - feats[1]) ** 2).mean().item(), rtol=1e-6)
    e = embed(iad_dissimilarity(feats), seed=0)
    assert e.shape == (12, 2)
    # separation is measured on the dissimilarities (the silhouette of local vs global rows)
    apart = torch.cat([torch.zeros(6, 128), torch.full((6, 128), 5.0)]) + 0.01 * feats
    assert separation(iad_dissimilarity(apart), 6) > 0.9
    assert abs(separation(iad_dissimilarity(feats), 6)) < 0.2  # two halves of one cloud: mixed


def test_tsne_samples_only_abnormal_patches():
    from glance_lite.tsne import sample_patches
    masks = torch.zeros(3, 1, 256, 256)
    masks[1, :, 100:140, 100:140] = 1
    s = sample_patches(masks, n_patches=400, seed=0)
    assert len(s.ratio) > 0 and (s.ratio > 0).all() and (s.image_index == 1).all()
    r, c = s.top_left[0].tolist()
    assert abs(masks[1, 0, r:r + 33, c:c + 33].mean().item() - s.ratio[0].item()) < 1e-6


def test_one_class_training_runs_and_scores(tmp_path):
    """Supplementary C.2 on a tiny synthetic split, smoke profile: trains, saves, scores."""
    from glance_lite.data import OneClassSplit
    from glance_lite.oneclass_train import evaluate_one_class, score_images, train_one_class
    gen = torch.Generator().manual_seed(0)
    split = OneClassSplit(train=torch.rand(12, 3, 16, 16, generator=gen),
                          test=torch.rand(8, 3, 16, 16, generator=gen),
                          test_labels=torch.tensor([0] * 4 + [1] * 4))
    path = train_one_class(tmp_path / "oc", split, "smoke", "random", resume=False)
    assert (path / "glance.pt").is_file() and (path / "log.jsonl").is_file()
    assert train_one_class(tmp_path / "oc", split, "smoke", "random", resume=True) == path
    res = evaluate_one_class(path, split)
    assert set(res["auroc"]) == {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}
    assert all(0.0 <= a <= 1.0 for a in res["auroc"].values())
    from glance_lite.model import load_model
    s_iad, s_dad = score_images(load_model(path), split.test)
    assert s_iad.shape == (8,) and ((s_dad >= 0) & (s_dad <= 1)).all()


def test_one_class_learning_rates_match_the_supplementary_in_the_paper_profile():
    from glance_lite.oneclass_train import learning_rates
    from glance_lite.profiles import get_profile
    lrs = learning_rates(get_profile("paper"))
    assert all(abs(v - 1e-5) < 1e-12 for v in lrs.values()), lrs


def test_untrained_teacher_notice_is_a_warning_admonition(monkeypatch, capsys):
    """book_setup's notice: a MyST {warning} in the book, a box in Jupyter, one line as text."""
    from glance_lite.explorer import Notice, book_setup
    monkeypatch.setenv("GLANCE_PROFILE", "smoke")
    monkeypatch.delenv("GLANCE_TEACHER", raising=False)
    setup = book_setup()
    out = capsys.readouterr().out
    assert setup.teacher == "random" and len(setup.notes) == 1 and isinstance(setup.notes[0], Notice)
    md = setup.notes[0]._repr_markdown_()
    assert md.startswith("```{admonition} Untrained teacher\n:class: warning\n") and md.rstrip().endswith("```")
    assert "UNTRAINED" in md and "smoke" in md                  # the run's facts: why this teacher
    assert "<b>Untrained teacher</b>" in setup.notes[0]._repr_html_()
    assert "UNTRAINED TEACHER: Every number" in out           # outside a kernel: printed as text


def _build_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location("book_build", BOOK / "_tools" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cached_build_config_keys_the_cache_on_profile_and_source(tmp_path):
    """book/_tools/build.py: cache mode, one cache folder per (profile, package source), and the
    local extension folder made absolute (the config is written under _build/)."""
    yaml = pytest.importorskip("yaml")
    tool = _build_tool()
    (tmp_path / "glance_lite").mkdir()
    src = tmp_path / "glance_lite" / "a.py"
    src.write_text("x = 1\n")
    (tmp_path / "_config.yml").write_text(
        "title: t\nexecute:\n  execute_notebooks: force\nsphinx:\n  local_extensions:\n    ext: book/_ext\n")
    cfg = yaml.safe_load(tool.cached_config("cpu", tmp_path).read_text())
    assert cfg["execute"]["execute_notebooks"] == "cache"
    assert cfg["sphinx"]["local_extensions"]["ext"] == str(tmp_path / "book/_ext")
    cpu_cache = cfg["execute"]["cache"]
    smoke = yaml.safe_load(tool.cached_config("smoke", tmp_path).read_text())["execute"]["cache"]
    assert smoke != cpu_cache and Path(cpu_cache).name.startswith("cpu-")
    src.write_text("x = 2\n")  # a source change starts a new cache
    assert yaml.safe_load(tool.cached_config("cpu", tmp_path).read_text())["execute"]["cache"] != cpu_cache
    assert "force" in (tmp_path / "_config.yml").read_text()  # the real config is left alone
