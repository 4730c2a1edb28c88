"""Write the Markdown tables that quote the accuracy benchmark's results files.

    python benchmarks/tables.py           # rewrite every generated table in place
    python benchmarks/tables.py --check   # write nothing; exit 1 if a table is out of date

The numbers live in benchmarks/results/accuracy-<tag>.json (written by benchmarks/accuracy.py:
{dataset: {seed: {method: metrics}}}), the settings line in the .md beside each one (profile,
overrides, Global-Net, teacher, torch, threads) and, for newer runs, the run's record in
accuracy-<tag>.meta.json (machine, CPUs, GPU; its date and commit are not copied into the tables). Every table below is generated from them, so the documents
never disagree with the results files. A table sits between two marker comments in its file,
`<!-- NAME:start -->` and `<!-- NAME:end -->`; everything between them is replaced.

    README.md                 results (results in brief), demo (the quickstart's excerpt)
    benchmarks/README.md      accuracy-main (the current defaults, per method), accuracy-files
    docs/deviations.md        paper-recipe, image-score, offline-teacher (benchmarks/results/teacher.jsonl,
                              written by benchmarks/teacher.py), one side-by-side table per pair in SIDE_BY_SIDE

Plain Python and json only: it runs without torch and in well under a second.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MAIN = "cpu-centred"                      # the short profiles' current defaults
PAPER_RECIPE = "cpu-paper-paper-recipe"   # accuracy.py --recipe paper
SYNTHETIC = ("fabric", "circuit", "cable")  # glance_lite.data.SYNTHETIC_CATEGORIES (not imported: torch)
PEERS = ("nns", "gaussian", "amc")        # the MFFA-lite baselines (glance_lite/baselines/)
METHODS = ("glance", "local_only") + PEERS
# what each results file is (accuracy-files table); a file without an entry is listed as "–"
DESCRIPTIONS = {
    "cpu-centred": "the current defaults of the `cpu` profile",
    "cpu-centred-stop_check_every-0": "the defaults without early stopping: all 1500 Global-Net steps",
    "cpu-centred-context_stain_grey-False-calibrate_dad-False":
        "the defaults with random-colour context stains and Eq. (12) uncalibrated",
    "cpu-coords": "the `coords` Global-Net, colour context stains, Eq. (12) uncalibrated",
    "cpu-coords-hard_holes_gamma-0-mismatch_negatives-0":
        "as `cpu-coords`, without hard-hole weighting and mismatch negatives",
    "cpu-paper-paper-recipe": "the paper's Global-Net recipe in the `cpu` budget (`--recipe paper`)",
}
# side-by-side tables in docs/deviations.md: marker name -> (results A, results B, what differs)
SIDE_BY_SIDE = {
    "sbs-early-stop": ("cpu-centred", "cpu-centred-stop_check_every-0",
                       "early stopping / all 1500 Global-Net steps"),
    "sbs-grey-calibrate": ("cpu-centred-stop_check_every-0", "cpu-centred-context_stain_grey-False-calibrate_dad-False",
                           "grey context stains + calibrated s_DAD / both off"),
    "sbs-hard-mismatch": ("cpu-coords", "cpu-coords-hard_holes_gamma-0-mismatch_negatives-0",
                          "hard-hole weighting + mismatch negatives / both off (`coords` Global-Net)"),
    "sbs-centred-coords": ("cpu-centred-context_stain_grey-False-calibrate_dad-False", "cpu-coords",
                           "`centred` / `coords` Global-Net (colour context stains, Eq. (12) uncalibrated)"),
}
# (column title, metric key) of the per-method tables; see `metric`
COLUMNS = (("PRO", "pro"), ("pixel AUROC", "pixel_auroc"), ("image AUROC", "image_auroc"),
           ("PRO struct", "struct"), ("PRO logic", "logic"), ("R² Global-Net", "r2_global"),
           ("R² position mean", "r2_position_mean"), ("DAD loss", "dad_loss"),
           ("DAD AUROC stains", "dad_auroc_stains"), ("PRO λs=1", "pro_iad_only"), ("s", "seconds"))
SBS_COLUMNS = (("PRO", "pro"), ("PRO logic", "logic"), ("PRO struct", "struct"),
               ("R² Global-Net", "r2_global"), ("DAD loss", "dad_loss"), ("PRO λs=1", "pro_iad_only"),
               ("s", "seconds"))


class Results:
    """One results file: `data` {dataset: {seed: {method: metrics}}} and its settings line."""

    def __init__(self, tag: str):
        """Read `results/accuracy-<tag>.json` (SystemExit when missing) and its settings."""
        path = RESULTS / f"accuracy-{tag}.json"
        if not path.is_file():
            raise SystemExit(f"tables.py: {path.relative_to(ROOT)} is missing (benchmarks/accuracy.py writes it)")
        raw = json.loads(path.read_text())
        self.tag = tag
        self.data = {k: v for k, v in raw.items() if is_dataset(v)}
        meta = RESULTS / f"accuracy-{tag}.meta.json"
        record = json.loads(meta.read_text()) if meta.is_file() else {}
        self.settings = settings_line(record, path.with_suffix(".md"))

    def seeds(self, dataset: str) -> list[str]:
        """The dataset's seeds in numeric order."""
        return sorted(self.data.get(dataset, {}), key=int)

    def values(self, dataset: str, method: str, key: str) -> list:
        """One metric over the dataset's seeds (None where a run lacks it)."""
        return [metric(self.data[dataset][s].get(method, {}), key) for s in self.seeds(dataset)]


def is_dataset(value) -> bool:
    """True for a {seed: {method: metrics}} entry (not some other entry a results file may hold)."""
    return (isinstance(value, dict) and bool(value)
            and all(k.isdigit() and isinstance(v, dict) and "glance" in v for k, v in value.items()))


def settings_line(record: dict, md: Path) -> str:
    """What a results file says about its runs: the first line of the .md beside it, plus the
    machine of the run record (accuracy-<tag>.meta.json) when there is one. Dates and commits stay
    in the results files (the tables are to be reproducible, not dated)."""
    parts = md.read_text().splitlines()[0].rstrip(".").split(", ") if md.is_file() else []
    if not parts and isinstance(record.get("profile"), dict):
        prof = record["profile"]
        arch = prof.get("deviations", {}).get("global_arch", prof.get("global_arch"))
        parts = [f"Profile `{prof.get('name')}`", f"Global-Net `{arch}`", f"teacher `{record.get('teacher')}`"]
    extra = [("torch", "torch {}"), ("threads", "{} threads"), ("machine", "machine {}"), ("cpus", "{} CPUs"),
             ("cuda", "GPU {}")]
    for key, text in extra:
        if record.get(key) not in (None, "") and not any(text.format(record[key]) in p for p in parts):
            parts.append(text.format(record[key]))
    dated = re.compile(r"commit|date|\b[0-9a-f]{7,40}\b|\d{4}-\d{2}-\d{2}", re.I)
    return ", ".join(p for p in parts if not dated.search(p)) + "." if parts else ""


def metric(row: dict, key: str):
    """A metric of one method's row: "struct" / "logic" are the per-kind PROs, else the key."""
    if key in ("struct", "logic"):
        kind = {"struct": "structural", "logic": "logical"}[key]
        return row.get("per_kind", {}).get(kind, {}).get("pro")
    return row.get(key)


def mean(values: list):
    """Mean of the numbers in `values` (None and NaN skipped); None when there are none."""
    nums = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return sum(nums) / len(nums) if nums else None


def fmt(value, digits: int = 3) -> str:
    """A number as the tables print it; "–" for a missing one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def joined(values: list, digits: int = 3) -> str:
    """Per-seed values as "a / b"; one "–" when all are missing."""
    if all(fmt(v) == "–" for v in values):
        return "–"
    return " / ".join(fmt(v, digits) for v in values)


def markdown(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def seed_label(res: Results) -> str:
    """The seeds a results file holds, e.g. "seeds 0, 1"."""
    seeds = sorted({s for d in res.data for s in res.seeds(d)}, key=int)
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(seeds)


def best_peer(res: Results, dataset: str, key: str = "pro") -> tuple[str, float | None]:
    """The MFFA-lite peer with the highest mean `key` over seeds, and that mean."""
    scored = [(mean(res.values(dataset, p, key)), p) for p in PEERS]
    scored = [(v, p) for v, p in scored if v is not None]
    if not scored:
        return "–", None
    value, name = max(scored)
    return name, value


def results_brief(res: Results) -> str:
    """README's table: per dataset, the mean over seeds of Glance's, local-only's and the best
    MFFA-lite peer's PRO, and Glance's image AUROC against the best peer's."""
    rows = []
    for ds in res.data:
        peer, peer_pro = best_peer(res, ds)
        peer_img, peer_img_auroc = best_peer(res, ds, "image_auroc")
        rows.append([f"{ds} ({'synthetic' if ds in SYNTHETIC else 'real'})",
                     f"**{fmt(mean(res.values(ds, 'glance', 'pro')))}**",
                     fmt(mean(res.values(ds, "local_only", "pro"))),
                     f"{fmt(peer_pro)} ({peer})",
                     f"{fmt(mean(res.values(ds, 'glance', 'image_auroc')))} / {fmt(peer_img_auroc)} ({peer_img})"])
    head = ["dataset", "Glance PRO", "local-only PRO", "best MFFA-lite peer PRO",
            "image AUROC: Glance / best peer"]
    label = seed_label(res)
    label = f"Mean over {label}" if "seeds" in label else label[0].upper() + label[1:]
    return (f"{label}; `benchmarks/results/accuracy-{res.tag}.json`: {res.settings}\n\n"
            + markdown(head, rows))


def demo_excerpt(res: Results, dataset: str = "circuit", seed: str = "0") -> str:
    """What `glance-lite demo --category circuit` prints at the end (glance_lite.cli.metrics_table's
    layout), with the benchmark's numbers for that dataset and seed."""
    rows = res.data[dataset][seed]
    head = f"{'':<22}{'PRO':>7}{'pixAUROC':>10}{'imgAUROC':>10}{'PRO struct':>12}{'PRO logic':>11}"
    lines = ["profile cpu, teacher random", head, "-" * len(head)]
    for name, method in ((dataset, "glance"), (f"{dataset} local-only", "local_only")):
        m = rows[method]
        lines.append(f"{name:<22}{fmt(m['pro']):>7}{fmt(m['pixel_auroc']):>10}{fmt(m['image_auroc']):>10}"
                     f"{fmt(metric(m, 'struct')):>12}{fmt(metric(m, 'logic')):>11}")
    g = rows["glance"]
    lines.append(f"{dataset}: Global-Net R^2 {fmt(g.get('r2_global'))} vs position mean "
                 f"{fmt(g.get('r2_position_mean'))} on normal test patches (higher: it learned from the context)")
    return "```text\n" + "\n".join(lines) + "\n```"


def accuracy_main(res: Results) -> str:
    """benchmarks/README.md's main table: every dataset and method, each cell the per-seed values."""
    rows = []
    for ds in res.data:
        for method in METHODS:
            cells = [joined(res.values(ds, method, key), 0 if key == "seconds" else 3) for _, key in COLUMNS]
            rows.append([ds, method.replace("_", "-")] + cells)
    head = ["dataset", "method"] + [title for title, _ in COLUMNS]
    return (f"Each cell: {seed_label(res).replace(', ', ' / ')}. [`accuracy-{res.tag}`](results/accuracy-{res.tag}.md): "
            f"{res.settings}\n\n"
            + markdown(head, rows))


def accuracy_files(tags: list[str]) -> str:
    """benchmarks/README.md's index of the results files: what each one is, its settings, its runs."""
    rows = []
    for tag in tags:
        res = Results(tag)
        runs = ", ".join(f"{ds} ({'/'.join(res.seeds(ds))})" for ds in res.data)
        rows.append([f"[`accuracy-{tag}`](results/accuracy-{tag}.md)", DESCRIPTIONS.get(tag, "–"),
                     res.settings, runs])
    return markdown(["results file", "what", "settings", "datasets (seeds)"], rows)


def paper_recipe(paper: Results, ours: Results) -> str:
    """docs/deviations.md: the paper's recipe against ours, per dataset and seed both hold."""
    keys = (("PRO", "pro"), ("PRO logic", "logic"), ("PRO struct", "struct"), ("R² Global-Net", "r2_global"),
            ("R² position mean", "r2_position_mean"), ("DAD loss", "dad_loss"), ("s", "seconds"))
    rows = []
    for ds in paper.data:
        for seed in paper.seeds(ds):
            if seed not in ours.data.get(ds, {}):
                continue
            for label, res, method in (("the paper's recipe", paper, "glance"), ("ours", ours, "glance"),
                                       ("local-only (no context)", ours, "local_only")):
                row = res.data[ds][seed][method]
                rows.append([ds, seed, label] + [fmt(metric(row, k), 0 if k == "seconds" else 3) for _, k in keys])
    return (f"- the paper's recipe: `accuracy-{paper.tag}`: {paper.settings}\n"
            f"- ours: `accuracy-{ours.tag}`: {ours.settings}\n\n"
            + markdown(["dataset", "seed", "Global-Net recipe"] + [t for t, _ in keys], rows))


def image_scores(res: Results) -> str:
    """docs/deviations.md#image-score: Glance's image AUROC with our image score and with the
    paper's maximum of the map (same runs), beside local-only's and the best peer's."""
    rows = []
    for ds in res.data:
        peer, _ = best_peer(res, ds, "image_auroc")
        for seed in res.seeds(ds):
            row = res.data[ds][seed]
            rows.append([ds, seed] + [fmt(row[m].get(k)) for m, k in (("glance", "image_auroc"),
                                                                      ("glance", "image_auroc_max"),
                                                                      ("local_only", "image_auroc"))]
                        + [f"{fmt(row.get(peer, {}).get('image_auroc'))} ({peer})"])
    head = ["dataset", "seed", "Glance, ours", "Glance, maximum of the map", "local-only", "best peer"]
    return f"Image AUROC. `accuracy-{res.tag}`: {res.settings}\n\n" + markdown(head, rows)


TEACHER_COLUMNS = ("gaussian@1", "gaussian@2", "gaussian@3", "gaussian@1+2+3", "pixels-nn",
                   "teacher-nn@2", "teacher-nn@3", "teacher-nn@4", "local-only")


def teacher_table(path: Path = RESULTS / "teacher.jsonl") -> str:
    """docs/deviations.md#offline-teacher: one row per teacher, seed and real set of
    benchmarks/teacher.py's results (PRO; the digits probe's layer4 accuracy; R² of the student)."""
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    rows = []
    for run in runs:
        name = Path(run["teacher"]).stem if run["teacher"] not in ("random", "imagenet") else run["teacher"]
        for ds in (k for k, v in run.items() if isinstance(v, dict) and "n_train" in v):
            res = run[ds]
            rows.append([name, str(run["seed"]), ds, f"{res['n_train']} / {res['n_test']}",
                         fmt(run["probe_digits"]["layer4"])] + [fmt(res.get(c, {}).get("pro")) for c in TEACHER_COLUMNS]
                        + [fmt(res["r2_student"])])
    head = ["teacher", "seed", "set", "train / test images", "digits probe"] + list(TEACHER_COLUMNS) + ["R² student"]
    return markdown(head, rows) if rows else "(no results: run `python benchmarks/teacher.py measure ...`)"


def side_by_side(a: Results, b: Results, what: str) -> str:
    """docs/deviations.md: two results files per dataset and seed, each cell "A / B"."""
    rows = []
    for ds in a.data:
        for seed in a.seeds(ds):
            if seed not in b.data.get(ds, {}):
                continue
            ra, rb = a.data[ds][seed]["glance"], b.data[ds][seed]["glance"]
            cells = [joined([metric(ra, k), metric(rb, k)], 0 if k == "seconds" else 3) for _, k in SBS_COLUMNS]
            la, lb = (fmt(metric(r.data[ds][seed]["local_only"], "pro")) for r in (a, b))
            rows.append([ds, seed, la if la == lb else f"{la} / {lb}"] + cells)
    head = ["dataset", "seed", "local-only PRO"] + [t for t, _ in SBS_COLUMNS]
    return (f"Each cell: {what}.\n\n- A: `accuracy-{a.tag}`: {a.settings}\n- B: `accuracy-{b.tag}`: {b.settings}\n\n"
            + markdown(head, rows))


def all_tags() -> list[str]:
    """Every results file's tag, the main one first, then in name order."""
    tags = sorted(p.stem[len("accuracy-"):] for p in RESULTS.glob("accuracy-*.json")
                  if not p.name.endswith(".meta.json"))
    return sorted(tags, key=lambda t: t != MAIN)


def tables() -> dict[Path, dict[str, str]]:
    """{file: {marker name: generated table}} for every table this script owns."""
    main, paper = Results(MAIN), Results(PAPER_RECIPE)
    deviations = {"paper-recipe": paper_recipe(paper, main), "image-score": image_scores(main),
                  "offline-teacher": teacher_table()}
    for name, (a, b, what) in SIDE_BY_SIDE.items():
        deviations[name] = side_by_side(Results(a), Results(b), what)
    return {ROOT / "README.md": {"results": results_brief(main), "demo": demo_excerpt(main)},
            ROOT / "benchmarks" / "README.md": {"accuracy-main": accuracy_main(main),
                                                "accuracy-files": accuracy_files(all_tags())},
            ROOT / "docs" / "deviations.md": deviations}


def fill(text: str, name: str, body: str) -> str:
    """`text` with the part between `<!-- NAME:start -->` and `<!-- NAME:end -->` set to `body`;
    ValueError when the markers are missing."""
    pattern = re.compile(rf"(<!-- {re.escape(name)}:start -->\n).*?(\n?<!-- {re.escape(name)}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {name}:start --> ... <!-- {name}:end --> markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2).lstrip("\n"), text, count=1)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the tables (or, with --check, only report the files that are out of date).
    Exit status: 0 done / up to date, 1 out of date (--check) or markers missing."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table is out of date")
    args = ap.parse_args(argv)
    status = 0
    for path, bodies in tables().items():
        name = path.relative_to(ROOT)
        old = path.read_text() if path.is_file() else ""
        new = old
        for marker, body in bodies.items():
            try:
                new = fill(new, marker, body)
            except ValueError as e:
                print(f"{name}: {e}", file=sys.stderr)
                status = 1
        if new == old:
            continue
        if args.check:
            print(f"{name}: out of date (run python benchmarks/tables.py)", file=sys.stderr)
            status = 1
        else:
            path.write_text(new)
            print(f"rewrote {name}")
    return status


if __name__ == "__main__":
    sys.exit(main())
