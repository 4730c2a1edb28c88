"""Helpers for the book: chapter setup and the lambda_s explorer (paper Eq. 13, Sec. 4.4).

Chapter setup (`book_setup`): every chapter of the book starts by calling it. It finds the
repository root (or uses the working folder on Colab), picks the device, the run profile
(`GLANCE_PROFILE`, default auto) and the teacher, and names the shared folders:

    <home>/data/synthetic-<profile>/                 the synthetic MVTec-format data set
    <home>/runs/book/<profile>-<teacher>/<category>/ run folder (train(..., resume=True) reuses it)
    <home>/runs/book/<profile>-<teacher>/<category>-eval/   evaluate()'s output
(<home> is $GLANCE_HOME when set, e.g. a Google Drive folder on Colab, else the root.)

The lambda_s explorer re-weights stored per-patch scores, s = lambda_s s_IAD + (1 - lambda_s) s_DAD,
without running any network. Because IDW interpolation is linear, the map for any lambda_s is
the same mix of the two per-head maps, so a new lambda_s costs one weighted sum plus the metrics.

Two front ends share `ExplorerData`:
  * `html_player(frames)`: a self-contained HTML/JS slider over precomputed frames (PNG data
    URIs + metrics), for the static HTML book: plain inline JavaScript, no external resource;
  * `live_explorer(data)`: an ipywidgets slider that recomputes maps and PRO for any lambda_s,
    shown only in a live kernel (`is_live()`: on Colab or with GLANCE_LIVE=1), so that the built
    HTML never carries widget views whose JavaScript would come from a CDN.
`show_explorer(data)` picks the right one.
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .idw import IDW_POWER, idw_maps
from .metrics import au_pro, image_auroc, image_scores, pixel_auroc
from .scoring import PatchScores
from .teacher import on_colab

REPO_URL_HINT = "the `repository.url` of _config.yml"


# ----------------------------------------------------------------------------- environment
def is_live() -> bool:
    """True in an interactive kernel where widgets can be used: Colab, or GLANCE_LIVE=1.

    The book build leaves GLANCE_LIVE unset, so the executed HTML shows only the
    self-contained slider.
    """
    if os.environ.get("GLANCE_LIVE", "") not in ("", "0"):
        return True
    return on_colab()


def find_repo_root(start: str | Path | None = None) -> Path:
    """The book's root: $GLANCE_BOOK_ROOT, else the first parent of `start` (default: cwd)
    holding `_config.yml` and `_toc.yml`, else `start` itself (e.g. /content on Colab)."""
    env = os.environ.get("GLANCE_BOOK_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for p in [here, *here.parents]:
        if (p / "_config.yml").is_file() and (p / "_toc.yml").is_file():
            return p
    return here


@dataclass
class BookSetup:
    """What a chapter needs to know: folders, profile, device, teacher."""

    root: Path
    profile: object
    device: torch.device
    teacher: str
    teacher_note: str
    seed: int = 0
    live: bool = False
    notes: list = field(default_factory=list)

    @property
    def home(self) -> Path:
        """Where data and runs live: $GLANCE_HOME (e.g. a mounted Google Drive folder, so that
        a later chapter in a fresh Colab runtime finds the model an earlier one trained), else
        the book's root."""
        env = os.environ.get("GLANCE_HOME")
        return Path(env).expanduser() if env else self.root

    @property
    def data_root(self) -> Path:
        return self.home / "data" / f"synthetic-{self.profile.name}"

    @property
    def runs(self) -> Path:
        return self.home / "runs" / "book" / f"{self.profile.name}-{self.teacher}"

    def run_dir(self, category: str) -> Path:
        return self.runs / category

    def eval_dir(self, category: str) -> Path:
        return self.runs / f"{category}-eval"

    def make_data(self, categories: Sequence[str] | None = None) -> Path:
        """The synthetic data set of this profile (written once, reused afterwards)."""
        from .data import make_synthetic
        return make_synthetic(self.data_root, seed=self.seed, categories=categories,
                              **dict(self.profile.synthetic))

    def train(self, category: str, until: str = "train") -> Path:
        """The run folder of `category` (`load_model(run)`): loaded if an earlier chapter trained
        it, else trained now (printed: which, and how long). until="finetune": Local-Net only
        (RUN/local.pt, `load_local(run)`)."""
        from .training import train
        self.make_data([category])
        target = self.run_dir(category) / ("glance.pt" if until == "train" else "local.pt")
        had, t0 = target.is_file(), time.perf_counter()
        run = train(self.data_root, category, self.run_dir(category), profile=self.profile, teacher=self.teacher,
                    seed=self.seed, resume=True, device=self.device, progress=self.live, until=until)
        what = "Local-Net" if until != "train" else "model"
        print(f"{category} {what}: " + ("found in the run folder, trained before" if had else
                                        f"trained now in {time.perf_counter() - t0:.0f} s") + f" ({target})")
        return run

    def train_local(self, category: str) -> Path:
        """The run folder of `category` with Local-Net pre-trained (chapter 2, RUN/local.pt),
        nothing else; a later `train` continues from it."""
        return self.train(category, until="finetune")

    def evaluate(self, category: str) -> dict:
        """evaluate()'s metrics for `category`, recomputed only when the model is newer."""
        return self._evaluated(self.train(category), self.eval_dir(category), category)

    def _evaluated(self, run: Path, out: Path, category: str) -> dict:
        """evaluate(run) into `out`, or its stored metrics when they are newer than the model."""
        from .evaluation import evaluate
        metrics, model = out / "metrics.json", run / "glance.pt"
        if metrics.is_file() and (out / "scores.npz").is_file() \
                and metrics.stat().st_mtime >= model.stat().st_mtime:
            return json.loads(metrics.read_text())
        # figure=False: evaluate's figure helper switches matplotlib to the Agg backend, which
        # would silence plt.show() in the notebook that called it
        return evaluate(run, self.data_root, category, out_dir=out, device=self.device, figure=False)

    def variant(self, category: str, train_steps: int, seed: int | None = None, **changes) -> Path:
        """A run folder with `category`'s Local-Net (`train_local`) and a Global-Net phase of
        `train_steps` steps trained with the profile's fields `changes` (e.g. standardize=False)
        and `seed` (default: the book's): the book's one-change experiments (chapters 4 and 11),
        and a second seed of one to see how much a run varies by chance. Trained once, reused afterwards;
        runs with the same steps and changes share the folder (RUNS/<category>-variants/...);
        prints how long the phase took when it trains it."""
        import shutil

        from .profiles import get_profile
        from .training import train
        prof = get_profile(self.profile, train_steps=train_steps, **changes)
        changed = {k: v for k, v in changes.items()
                   if getattr(prof.deviations, k, getattr(prof, k, None)) != getattr(
                       self.profile.deviations, k, getattr(self.profile, k, None))}
        name = re.sub(r"[^\w.=-]+", "_", "-".join(f"{k}={v}" for k, v in sorted(changed.items()))).strip("_")
        name = (name or "as-profile") + ("" if seed in (None, self.seed) else f"-seed={seed}")
        run = self.runs / f"{category}-variants" / f"{train_steps}steps-{name}"
        if (run / "glance.pt").is_file():  # trained before: said once, when it was trained
            return run
        local, t0 = self.run_dir(category) / "local.pt", time.perf_counter()
        if not local.is_file():
            self.train_local(category)
        run.mkdir(parents=True, exist_ok=True)
        shutil.copy(local, run / "local.pt")
        train(self.data_root, category, run, profile=prof, teacher=self.teacher,
              seed=self.seed if seed is None else seed, resume=True, device=self.device, progress=False)
        print(f"{category} variant {name}: Global-Net phase trained now in {time.perf_counter() - t0:.0f} s")
        return run

    def variant_metrics(self, category: str, train_steps: int, seed: int | None = None, **changes) -> dict:
        """evaluate()'s metrics of `variant(category, train_steps, seed, **changes)` (in RUN/eval)."""
        run = self.variant(category, train_steps, seed, **changes)
        return self._evaluated(run, run / "eval", category)

    def summary(self) -> str:
        p = self.profile
        lines = [f"device   : {self.device}" + (f" ({torch.cuda.get_device_name(0)})" if self.device.type == "cuda" else ""),
                 f"profile  : {p.name} (distill {p.distill_steps}, finetune {p.finetune_steps}, "
                 f"train {p.train_steps} steps; {p.grid_per_side}x{p.grid_per_side} scoring grid)",
                 f"teacher  : {self.teacher}" + (" - UNTRAINED, see the warning below" if self.teacher == "random"
                                                 else ""),
                 f"data     : {self.data_root}",
                 f"runs     : {self.runs}",
                 f"live     : {'yes (interactive widgets)' if self.live else 'no (static HTML explorer)'}"]
        return "\n".join(lines)


@dataclass
class Notice:
    """A warning the reader must not miss, e.g. the untrained-teacher notice of `book_setup`.

    In the built book it is a MyST admonition of class warning (text/markdown; _config.yml ranks
    Markdown above HTML for the html builder so that myst-nb parses it); in Jupyter or Colab a
    yellow box (text/html); as plain text, the title and the text on one line."""

    title: str
    text: str

    def _repr_markdown_(self) -> str:
        return f"```{{admonition}} {self.title}\n:class: warning\n\n{self.text}\n```\n"

    def _repr_html_(self) -> str:
        return ('<div style="border-left:4px solid #e0a800;background:#fff8e1;padding:6px 10px">'
                f"<b>{html.escape(self.title)}</b><br>{html.escape(self.text)}</div>")

    def __str__(self) -> str:
        return f"{self.title.upper()}: {self.text}"


def _show(notice: Notice) -> None:
    """Display `notice` as a rich output in a Jupyter kernel, else print it."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and getattr(get_ipython(), "kernel", None) is not None:
        display(notice)
    else:
        print(notice)


def book_setup(seed: int = 0, quiet: bool = False) -> BookSetup:
    """Called by the first cell of every chapter; prints (and returns) the chapter's settings and
    shows its notices (`Notice`: the untrained teacher) as warnings."""
    from .devices import resolve_device
    from .profiles import get_profile
    from .teacher import resolve_teacher
    prof = get_profile()
    device = resolve_device()
    teacher, note = resolve_teacher("auto", prof, announce=False)  # shown below as a Notice
    setup = BookSetup(find_repo_root(), prof, device, teacher, note, seed, is_live())
    if teacher == "random":
        setup.notes.append(Notice(
            "Untrained teacher",
            f"Every number this page computes with a trained model comes from a Local-Net distilled from "
            f"an {note}. It shows how the method runs, not how well the paper's ImageNet teacher would work."))
    torch.manual_seed(seed)
    _inline_figures()
    if not quiet:
        print(setup.summary())
        for n in setup.notes:
            _show(n)
    return setup


def _inline_figures() -> None:
    """In a Jupyter kernel, make plt.show() embed figures even if MPLBACKEND=Agg is set
    (a non-interactive backend would silently drop every figure of the chapter)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is not None and getattr(ip, "kernel", None) is not None:
        ip.run_line_magic("matplotlib", "inline")


# ----------------------------------------------------------------------------- explorer data
@dataclass
class ExplorerData:
    """What the explorer re-weights: per-head maps of a test set and its ground truth.

    maps_iad, maps_dad: (N,S,S) float32 IDW maps of s_IAD and s_DAD; masks (N,S,S) bool;
    labels (N,) 0/1; defects (N,) names; images (N,3,S,S) optional, for display;
    image_score: lambda_s -> image scores (N,) (the run's PositionNorm, image_score.py), else
    each map's maximum (supp. D.1).
    """

    maps_iad: np.ndarray
    maps_dad: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    defects: list
    images: np.ndarray | None = None
    image_score: Callable[[float], np.ndarray] | None = None

    @classmethod
    def from_scores(cls, scores: PatchScores, masks, labels, defects, images=None,
                    power: float = IDW_POWER) -> "ExplorerData":
        """Build from PatchScores (e.g. `evaluate.load_scores`) and the test split's ground truth."""
        mi = idw_maps(scores.s_iad, scores.grid, power).numpy().astype(np.float32)
        md = idw_maps(scores.s_dad, scores.grid, power).numpy().astype(np.float32)
        masks = _np(masks)
        if masks.ndim == 4:
            masks = masks[:, 0]
        imgs = None if images is None else _np(images).astype(np.float32)
        ranks = None
        if scores.norm is not None and len(scores.norm):  # else None: each map's maximum
            ranks = lambda lam: scores.image_scores(lam).numpy()  # noqa: E731
        return cls(mi, md, masks > 0.5, _np(labels).astype(int), list(defects), imgs, ranks)

    @classmethod
    def from_eval_dir(cls, eval_dir: str | Path, split) -> "ExplorerData":
        """From evaluate()'s scores.npz plus the loaded test split (`data.load_mvtec(..., "test")`)."""
        from .evaluation import load_scores
        scores, meta = load_scores(eval_dir)
        # the same images: compared by <split>/<defect>/<file>, so a moved data folder still matches
        tail = lambda paths: [Path(q).parts[-3:] for q in paths]  # noqa: E731
        if tail(meta["paths"]) != tail(split.paths):
            raise ValueError(f"{eval_dir}/scores.npz was computed on other images than this split; "
                             f"run evaluate again for this data")
        return cls.from_scores(scores, split.masks, split.labels, split.defects, split.images)

    def maps(self, lambda_s: float) -> np.ndarray:
        """Eq. 13 applied to the maps (IDW is linear, so this equals IDW of the mixed scores)."""
        if not 0.0 <= lambda_s <= 1.0:
            raise ValueError(f"lambda_s must lie in [0, 1]; got {lambda_s}")
        return lambda_s * self.maps_iad + (1.0 - lambda_s) * self.maps_dad

    def metrics(self, lambda_s: float) -> dict:
        m = self.maps(lambda_s)
        out = {"lambda_s": float(lambda_s), "pro": None, "pixel_auroc": None, "image_auroc": None}
        if 0 < self.masks.sum() < self.masks.size:
            out["pro"] = au_pro(self.masks, m)
            out["pixel_auroc"] = pixel_auroc(self.masks, m)
        if len(set(self.labels.tolist())) == 2:
            ranks = image_scores(m) if self.image_score is None else self.image_score(lambda_s)
            out["image_auroc"] = image_auroc(self.labels, ranks)
        return out


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ----------------------------------------------------------------------------- frames
def _jet(x: np.ndarray) -> np.ndarray:
    """(H,W) in [0,1] -> (H,W,3) uint8 with matplotlib's jet colour map."""
    from matplotlib import colormaps
    return (colormaps["jet"](np.clip(x, 0, 1))[..., :3] * 255).astype(np.uint8)


def _downsample(a: np.ndarray, side: int) -> np.ndarray:
    """Average-pool (H,W[,C]) to (side,side[,C]) when H is a multiple of side, else pick pixels."""
    h = a.shape[0]
    if h == side:
        return a
    if h % side == 0:
        f = h // side
        return a.reshape(side, f, side, f, *a.shape[2:]).mean(axis=(1, 3))
    idx = (np.arange(side) * h / side).astype(int)
    return a[idx][:, idx]


def png_data_uri(rgb: np.ndarray) -> str:
    """(H,W,3) uint8 -> 'data:image/png;base64,...'."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask (4-neighbourhood)."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def strip(tiles: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Concatenate (H,W,3) uint8 tiles horizontally with white gaps."""
    h = tiles[0].shape[0]
    white = np.full((h, gap, 3), 255, np.uint8)
    return np.concatenate(list(itertools.chain.from_iterable((t, white) for t in tiles))[:-1], axis=1)


def pick_examples(data: ExplorerData, n: int = 4) -> list[int]:
    """Up to n defective images with different defect types (first of each type), then more."""
    chosen, seen = [], set()
    for i, (lab, d) in enumerate(zip(data.labels, data.defects)):
        if lab == 1 and d not in seen:
            chosen.append(i)
            seen.add(d)
    chosen += [i for i, lab in enumerate(data.labels) if lab == 1 and i not in chosen]
    return chosen[:n]


def reference_strip(data: ExplorerData, idx: Sequence[int], side: int = 128) -> str:
    """PNG data URI of the chosen test images with their ground-truth outline in white."""
    tiles = []
    for i in idx:
        img = data.images[i].transpose(1, 2, 0) if data.images is not None \
            else np.zeros(data.masks.shape[1:] + (3,), np.float32)
        t = (_downsample(np.clip(img, 0, 1), side) * 255).astype(np.uint8)
        t[_outline(_downsample(data.masks[i].astype(np.float32), side) > 0.5)] = 255
        tiles.append(t)
    return png_data_uri(strip(tiles))


def map_strip(maps: np.ndarray, idx: Sequence[int], side: int = 128) -> str:
    """PNG data URI of the chosen maps in jet colours, one shared scale (min..max over them)."""
    sel = np.stack([_downsample(maps[i], side) for i in idx])
    lo, hi = float(sel.min()), float(sel.max())
    sel = (sel - lo) / (hi - lo) if hi > lo else np.zeros_like(sel)
    return png_data_uri(strip([_jet(s) for s in sel]))


def lambda_frames(data: ExplorerData, lambdas: Sequence[float] | None = None,
                  examples: Sequence[int] | None = None, side: int = 128) -> dict:
    """Precompute the static explorer: one frame per lambda_s with its map strip and metrics.

    Returns {"reference": data URI, "labels": [defect names], "frames": [{"lambda_s", "src",
    "pro", "pixel_auroc", "image_auroc"}, ...]}.
    """
    lambdas = [round(float(x), 4) for x in (np.linspace(0, 1, 11) if lambdas is None else lambdas)]
    idx = list(pick_examples(data) if examples is None else examples)
    if not idx:
        raise ValueError("the explorer needs at least one defective test image")
    frames = []
    for lam in lambdas:
        frames.append({**data.metrics(lam), "src": map_strip(data.maps(lam), idx, side)})
    return {"reference": reference_strip(data, idx, side), "labels": [data.defects[i] for i in idx],
            "frames": frames}


# ----------------------------------------------------------------------------- static player
_PLAYER_CSS = """
.glance-player{font-family:sans-serif;font-size:14px;border:1px solid #ccc;border-radius:6px;
 padding:10px;margin:8px 0;max-width:100%;overflow-x:auto}
.glance-player img{display:block;max-width:100%;height:auto;image-rendering:pixelated}
.glance-player .glance-row{display:flex;align-items:center;gap:12px;margin:6px 0}
.glance-player input[type=range]{width:260px}
.glance-player table{border-collapse:collapse;margin-top:6px;font-size:12px}
.glance-player td,.glance-player th{border:1px solid #ddd;padding:2px 6px;text-align:right}
.glance-player tr.glance-on{background:#ffe9a8;font-weight:bold}
"""

_PLAYER_JS = """
(function(){
  var root = document.getElementById(%(uid)s);
  if (!root) { return; }
  var frames = JSON.parse(root.querySelector('script[type="application/json"]').textContent);
  var slider = root.querySelector('input[type=range]');
  var img = root.querySelector('img.glance-map');
  var out = root.querySelector('.glance-value');
  var rows = root.querySelectorAll('tbody tr');
  function fmt(v){ return (v === null || v === undefined) ? 'n/a' : v.toFixed(3); }
  function show(i){
    var f = frames[i];
    img.src = f.src;
    img.alt = 'score maps for lambda_s = ' + f.lambda_s.toFixed(2);
    out.textContent = '\\u03bb\\u209b = ' + f.lambda_s.toFixed(2) + '   PRO = ' + fmt(f.pro) +
      '   pixel AUROC = ' + fmt(f.pixel_auroc) + '   image AUROC = ' + fmt(f.image_auroc);
    for (var r = 0; r < rows.length; r++) { rows[r].className = (r === i) ? 'glance-on' : ''; }
  }
  slider.addEventListener('input', function(){ show(parseInt(slider.value, 10)); });
  slider.addEventListener('change', function(){ show(parseInt(slider.value, 10)); });
  show(parseInt(slider.value, 10));
})();
"""


def html_player(player: dict, title: str = "λs explorer", initial: float = 0.8,
                uid: str | None = None) -> str:
    """A self-contained HTML snippet (inline CSS + JavaScript, no external resource) with a
    range slider over `lambda_frames(...)` output; moving it swaps the score-map image and the
    metrics line, and highlights the row of the metrics table."""
    frames = player["frames"]
    lams = [f["lambda_s"] for f in frames]
    start = int(np.argmin([abs(x - initial) for x in lams]))
    uid = uid or "glance-player-" + base64.b32encode(os.urandom(5)).decode().lower()
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    rows = "".join(f"<tr><td>{f['lambda_s']:.2f}</td><td>{fmt(f['pro'])}</td><td>{fmt(f['pixel_auroc'])}</td>"
                   f"<td>{fmt(f['image_auroc'])}</td></tr>" for f in frames)
    labels = " | ".join(html.escape(str(x)) for x in player["labels"])
    data = json.dumps([{k: f[k] for k in ("lambda_s", "src", "pro", "pixel_auroc", "image_auroc")}
                       for f in frames]).replace("</", "<\\/")
    return (f'<div class="glance-player" id="{uid}">'
            f"<style>{_PLAYER_CSS}</style>"
            f"<div><b>{html.escape(title)}</b> &mdash; s = &lambda;<sub>s</sub> s<sub>IAD</sub> + "
            f"(1 &minus; &lambda;<sub>s</sub>) s<sub>DAD</sub> (Eq. 13). Drag the slider.</div>"
            f'<div class="glance-row"><label>&lambda;<sub>s</sub> '
            f'<input type="range" class="glance-lambda" min="0" max="{len(frames) - 1}" step="1" '
            f'value="{start}" aria-label="lambda_s"></label>'
            f'<span class="glance-value" style="font-family:monospace"></span></div>'
            f"<div style=\"font-size:12px;color:#555\">test images ({labels}), ground truth outlined:</div>"
            f'<img class="glance-ref" src="{player["reference"]}" alt="test images with ground truth">'
            f"<div style=\"font-size:12px;color:#555\">score maps (jet colours, one scale per &lambda;<sub>s</sub>):</div>"
            f'<img class="glance-map" src="{frames[start]["src"]}" alt="score maps">'
            f"<table><thead><tr><th>&lambda;<sub>s</sub></th><th>PRO</th><th>pixel AUROC</th>"
            f"<th>image AUROC</th></tr></thead><tbody>{rows}</tbody></table>"
            f'<script type="application/json">{data}</script>'
            f"<script>{_PLAYER_JS % {'uid': json.dumps(uid)}}</script>"
            f"</div>")


# ----------------------------------------------------------------------------- live explorer
def live_explorer(data: ExplorerData, examples: Sequence[int] | None = None, step: float = 0.05):
    """ipywidgets slider: any lambda_s, maps and metrics recomputed on the fly. Returns the widget."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    idx = list(pick_examples(data) if examples is None else examples)
    slider = widgets.FloatSlider(value=0.8, min=0.0, max=1.0, step=step, description="λs",
                                 continuous_update=False, readout_format=".2f")
    out = widgets.Output()

    def redraw(change=None):
        lam = float(slider.value)
        m = data.maps(lam)
        met = data.metrics(lam)
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(2, len(idx), figsize=(2.6 * len(idx), 5.2), squeeze=False)
            sel = m[idx]
            for j, i in enumerate(idx):
                if data.images is not None:
                    axes[0, j].imshow(data.images[i].transpose(1, 2, 0).clip(0, 1))
                axes[0, j].contour(data.masks[i], levels=[0.5], colors="white", linewidths=0.8)
                axes[0, j].set_title(str(data.defects[i]), fontsize=9)
                axes[1, j].imshow(m[i], cmap="jet", vmin=sel.min(), vmax=sel.max())
                for ax in axes[:, j]:
                    ax.axis("off")
            f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
            fig.suptitle(f"λs = {lam:.2f}   PRO = {f(met['pro'])}   pixel AUROC = {f(met['pixel_auroc'])}"
                         f"   image AUROC = {f(met['image_auroc'])}", fontsize=10)
            fig.tight_layout()
            plt.show()

    slider.observe(redraw, names="value")
    box = widgets.VBox([slider, out])
    display(box)
    redraw()
    return box


def show_explorer(data: ExplorerData, title: str = "λs explorer", lambdas: Sequence[float] | None = None,
                  examples: Sequence[int] | None = None):
    """The live ipywidgets explorer in a live kernel (`is_live()`), else the static HTML player."""
    from IPython.display import HTML, display
    if is_live():
        return live_explorer(data, examples)
    display(HTML(html_player(lambda_frames(data, lambdas, examples), title=title)))
    return None


# ----------------------------------------------------------------------------- small helpers
def read_log(run_dir: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """RUN/log.jsonl -> {phase: {"step": array, loss name: array, ...}} for plotting curves."""
    out: dict[str, dict[str, list]] = {}
    for line in Path(run_dir, "log.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        d = out.setdefault(rec.pop("phase"), {})
        for k, v in rec.items():
            d.setdefault(k, []).append(v)
    return {ph: {k: np.asarray(v) for k, v in d.items()} for ph, d in out.items()}


def smooth(y: np.ndarray, k: int = 25) -> np.ndarray:
    """Moving average with a window of min(k, len(y)) (for noisy loss curves)."""
    y = np.asarray(y, dtype=float)
    k = max(1, min(k, len(y)))
    return np.convolve(y, np.ones(k) / k, mode="valid")
