"""The `glance-lite` command line: synth, train, evaluate, demo (and compare, see baselines/).

Every subcommand has --help; failures print one line `glance-lite: error: ...` and exit non-zero.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

from . import __version__

# = global_net.ARCHS, spelled out so that --help does not import torch (tests/test_cli.py checks both)
ARCHS = ("paper", "coords", "centred")

DEFAULT_DATA = Path("data") / "synthetic"


def default_data_root(prof) -> Path:
    """data/synthetic for the default dataset size, data/synthetic-<profile> for other sizes
    (so a smoke-sized set never blocks a cpu-sized one)."""
    from .profiles import PROFILES
    return DEFAULT_DATA if prof.synthetic == PROFILES["cpu"].synthetic else Path(f"{DEFAULT_DATA}-{prof.name}")


def _add_common(p: argparse.ArgumentParser, teacher: bool = True) -> None:
    p.add_argument("--profile", default=None,
                   help="smoke | cpu | colab | paper | auto (default: $GLANCE_PROFILE or auto = colab with CUDA, cpu without)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--arch", choices=ARCHS, default=None,
                   help="Global-Net architecture: paper = supp. Tab. 2 exactly; coords = ours, with the "
                        "hole's position; centred = coords run on a hole-centred map (default of the "
                        "smoke/cpu/colab profiles)")
    if teacher:
        p.add_argument("--teacher", default="auto",
                       help="auto (default): $GLANCE_TEACHER if set, else the profile's teacher (smoke: "
                            "random, others: imagenet), but imagenet only if its weights are in the torch "
                            "cache or can be downloaded (Colab), else random, announced | imagenet "
                            "(torchvision weights, downloaded if missing) | random (untrained) | PATH to a "
                            "ResNet-18 weights file")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="glance-lite", description="Glancing at the Patch (CVPR 2021), the teaching version.")
    ap.add_argument("--version", action="version", version=f"glance_lite {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the synthetic MVTec-format dataset")
    p.add_argument("--out", default=None, help=f"dataset root (default {DEFAULT_DATA}, or {DEFAULT_DATA}-PROFILE "
                                               f"for profiles with another dataset size)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the drawings (default 0)")
    p.add_argument("--profile", default=None, help="sets the dataset size (smoke is tiny)")
    p.add_argument("--force-data", "--overwrite", dest="force_data", action="store_true",
                   help="write into --out even if it holds files glance-lite did not write, and replace "
                        "category folders made with other parameters")

    p = sub.add_parser("train", help="pre-train Local-Net (if the run has none), then train Global-Net + DAD head")
    p.add_argument("--data", required=True, help="dataset root in MVTec AD layout")
    p.add_argument("--category", required=True, help="category folder under --data, e.g. circuit")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start again in an existing run folder")
    _add_common(p)

    p = sub.add_parser("evaluate", help="score maps and metrics.json for a trained run")
    p.add_argument("--run", required=True, help="run folder with glance.pt")
    p.add_argument("--data", required=True, help="dataset root in MVTec AD layout (the one the run was trained on)")
    p.add_argument("--category", required=True, help="category folder under --data, e.g. circuit")
    p.add_argument("--out", required=True, help="evaluation folder (metrics.json, maps, figure.png)")
    p.add_argument("--lambda-s", type=float, default=None, help="score weight of Eq. 13 (default 0.8)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto",
                   help="mixed precision for scoring: auto = bf16 on GPUs that do it natively, fp16 on "
                        "older ones (e.g. a T4), float32 on a CPU (default auto)")

    p = sub.add_parser("demo", help="synth + train + evaluate on the synthetic default, print a table")
    p.add_argument("--data", default=None, help=f"where the synthetic set goes (default {DEFAULT_DATA}, or "
                                                f"{DEFAULT_DATA}-PROFILE for profiles with another dataset size)")
    p.add_argument("--category", default=None, help="synthetic category (default: all)")
    p.add_argument("--out", default=None, help="folder for runs and evaluations (default runs/demo-PROFILE, or "
                                               "runs/demo-PROFILE-ARCH with another --arch, so runs of "
                                               "different settings never collide)")
    p.add_argument("--overwrite", action="store_true", help="retrain even if runs exist")
    p.add_argument("--force-data", action="store_true",
                   help="write into --data even if it holds files glance-lite did not write, and replace "
                        "category folders made with other parameters")
    _add_common(p)

    p = sub.add_parser("compare", help="Glance vs local-only, NNS, Gaussian and AMC on the same data")
    p.add_argument("--data", required=True, help="dataset root in MVTec AD layout")
    p.add_argument("--category", required=True, help="category folder under --data, e.g. circuit")
    p.add_argument("--out", required=True, help="output folder (comparison.json, the Glance run, maps)")
    p.add_argument("--overwrite", action="store_true",
                   help="compute the comparison again (a finished Glance run with the same settings is "
                        "reused, one with other settings is retrained)")
    p.add_argument("--max-bank-gb", type=float, default=None, metavar="GIB",
                   help="limit in GiB of every memory bank the baselines build (local-only and NNS "
                        "features, Gaussian statistics), checked before anything is trained (default 2)")
    _add_common(p)
    return ap


def _teacher_for(args, prof) -> str:
    """--teacher as a concrete value, checked (and an untrained one announced) before anything
    is written: teacher.resolve_teacher, the one policy of the CLI, the Python API and the book."""
    from .teacher import resolve_teacher
    return resolve_teacher(args.teacher, prof)[0]


# what the demo's numbers mean, per profile (printed under the table)
MEANING = {
    "smoke": "smoke profile: a few training steps only; these numbers only show that everything runs.",
    "cpu": "cpu profile: minutes of training instead of the paper's schedule; real but rough numbers.",
    "colab": "colab profile: thousands of steps instead of the paper's 200K; a shortened schedule.",
    "paper": "paper profile: the supplementary's schedule, but on the synthetic set; not the paper's MVTec AD table.",
}


def _progress() -> bool:
    """tqdm bars only on a terminal; in a log file they would be carriage-return spam."""
    return sys.stderr.isatty()


def _phase_lines(prof, category: str):
    """`on_step` callback for train(): one line per finished training phase (instead of bars).
    Its `.finish()` prints the Global-Net phase's line when early stopping ended it before train_steps."""
    last, train_step = [time.perf_counter()], [0, 0.0]  # the last train step seen and when

    def done(phase: str, step: int, now: float, note: str = "") -> None:
        print(f"{category}: {phase} phase done, {step} steps{note} in {now - last[0]:.1f} s", flush=True)
        last[0] = time.perf_counter()

    def on_step(phase: str, step: int) -> None:
        if phase == "train":
            train_step[:] = [step, time.perf_counter()]
        if step == getattr(prof, f"{phase}_steps", None):
            done(phase, step, time.perf_counter())

    def finish() -> None:
        if 0 < train_step[0] < prof.train_steps:
            done("train", train_step[0], train_step[1], f" of at most {prof.train_steps} (Global-Net's R² on "
                 "held-back images stopped rising)")
    on_step.finish = finish
    return on_step


def _train(data_root, category: str, run_dir, prof, teacher: str, args, **kw) -> Path:
    """train() with progress bars on a terminal, one line per phase otherwise."""
    from .training import train
    progress = _progress()
    lines = None if progress else _phase_lines(prof, category)
    run = train(data_root, category, run_dir, profile=prof, teacher=teacher, seed=args.seed, device=args.device,
                progress=progress, on_step=lines, **kw)
    if lines is not None:
        lines.finish()
    return run


def _stamp_clash(folder: Path, params: dict) -> str | None:
    """Why the synthetic category `folder` may not be (re)written with `params`, or None if it may:
    absent, or stamped by make_synthetic with the same parameters (any generator version)."""
    if not folder.exists():
        return None
    try:
        old = json.loads((folder / ".synthetic.json").read_text())
    except (OSError, ValueError):
        return "is not a synthetic category written by glance-lite (no .synthetic.json stamp)"
    if isinstance(old, dict) and {**old, "version": params["version"]} == params:
        return None
    return "holds a synthetic category made with other parameters (another profile or seed)"


def _check_synth_target(root: Path, cats, prof, seed: int, flag: str) -> None:
    """Refuse, before anything is written, to write the synthetic set into a folder that holds
    files glance-lite did not write, or over a category folder that is not the same set."""
    from .data.synthetic import _params
    if not root.exists():
        return
    if not root.is_dir():
        raise ValueError(f"{flag} {root} is a file; expected a folder for the synthetic dataset")
    # make_synthetic's own temporary folders (.CATEGORY.tmp-*, .CATEGORY.old-*) do not count
    entries = [p for p in root.iterdir() if not re.match(r"\.\w+\.(tmp|old)-", p.name)]
    if entries and not any((p / ".synthetic.json").is_file() for p in entries):
        raise ValueError(f"{root} is not empty and holds no synthetic dataset written by glance-lite; "
                         f"choose another {flag} folder, or pass --force-data to write into it anyway")
    sizes = {"size": 256, **dict(prof.synthetic)}
    for cat in cats:
        why = _stamp_clash(root / cat, _params(seed=seed, cat=cat, **sizes))
        if why:
            raise ValueError(f"{root / cat} {why}; choose another {flag} folder, or pass --force-data "
                             f"to replace it")


def _synth(root: Path, prof, seed: int, force: bool, flag: str, categories=None) -> Path:
    """The synthetic dataset under `root` (reused when it is there), after `_check_synth_target`."""
    from .data import SYNTHETIC_CATEGORIES, make_synthetic
    if not force:
        _check_synth_target(root, categories or SYNTHETIC_CATEGORIES, prof, seed, flag)
    t = time.perf_counter()
    out = make_synthetic(root, seed=seed, categories=categories, overwrite=force, **dict(prof.synthetic))
    print(f"synthetic dataset ready in {out} ({time.perf_counter() - t:.1f} s)")
    return out


LAYOUT = ("CATEGORY/train/good/*.png                        anomaly-free training images",
          "CATEGORY/test/<defect>/*.png                     test images (<defect> = good for normal ones)",
          "CATEGORY/ground_truth/<defect>/<name>_mask.png   a mask for every defective test image")


def _check_data(root) -> None:
    """A --data folder that exists but holds no category: show the layout it should have."""
    from .data import list_categories
    root = Path(root)
    if root.is_dir() and not list_categories(root):
        raise ValueError(f"{root} holds no category folder; --data expects the MVTec AD layout:\n"
                         + "\n".join("  " + line for line in LAYOUT))


def _check_run(args) -> None:
    """An `evaluate --run` folder without a trained model: say which command makes one."""
    run = Path(args.run)
    if (run / "glance.pt").is_file():
        return
    train = f"glance-lite train --data {args.data} --category {args.category} --out {run}"
    if (run / "checkpoint.pt").is_file():
        raise ValueError(f"{run} has no glance.pt: its training did not finish; finish it with "
                         f"`{train} --resume` (same --profile and --teacher as before)")
    raise ValueError(f"{run} has no glance.pt (no trained model); train one first: `{train}`")


def _profile(args):
    """The --profile, with --arch as an override where given."""
    from .profiles import get_profile
    return get_profile(args.profile, **({"global_arch": args.arch} if args.arch else {}))


def _demo_out(prof) -> Path:
    """runs/demo-PROFILE, or runs/demo-PROFILE-ARCH for an architecture other than the profile's."""
    from .profiles import get_profile
    arch = prof.deviations.global_arch
    same = arch == get_profile(prof.name).deviations.global_arch
    return Path("runs") / (f"demo-{prof.name}" if same else f"demo-{prof.name}-{arch}")


def cmd_synth(args) -> int:
    from .profiles import get_profile
    prof = get_profile(args.profile)
    _synth(Path(args.out) if args.out else default_data_root(prof), prof, args.seed, args.force_data, "--out")
    return 0


def cmd_train(args) -> int:
    prof = _profile(args)
    _check_data(args.data)
    run = _train(args.data, args.category, args.out, prof, _teacher_for(args, prof), args,
                 resume=args.resume, overwrite=args.overwrite)
    print(f"trained model: {run / 'glance.pt'}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation import evaluate
    from .metrics import metrics_table
    _check_run(args)
    _check_data(args.data)
    m = evaluate(args.run, args.data, args.category, out_dir=args.out, lambda_s=args.lambda_s,
                 device=args.device, amp=args.amp)
    print(metrics_table({args.category: m}))
    print(f"metrics: {Path(args.out) / 'metrics.json'}")
    return 0


def _local_only(run_dir: Path, root: Path, category: str, prof, device) -> dict:
    """Metrics of the local-only baseline (same Local-Net, no context) on the test split."""
    from .baselines.compare import local_only_maps
    from .data import load_mvtec
    from .devices import resolve_device
    from .evaluation import split_metrics
    test = load_mvtec(root, category, "test")
    maps, _ = local_only_maps(run_dir, load_mvtec(root, category, "train").images, test.images, prof,
                              resolve_device(device))
    return split_metrics(maps, test)


def cmd_demo(args) -> int:
    from .data import SYNTHETIC_CATEGORIES
    from .evaluation import evaluate
    from .metrics import metrics_table
    prof = _profile(args)
    teacher = _teacher_for(args, prof)
    cats = [args.category] if args.category else list(SYNTHETIC_CATEGORIES)
    root = _synth(Path(args.data) if args.data else default_data_root(prof), prof, args.seed,
                  args.force_data, "--data", categories=cats)
    out = Path(args.out) if args.out else _demo_out(prof)
    rows = {}
    for cat in cats:
        run_dir, ev = out / cat / "run", out / cat / "eval"
        t0 = time.perf_counter()
        _train(root, cat, run_dir, prof, teacher, args, resume=not args.overwrite, overwrite=args.overwrite)
        t1 = time.perf_counter()
        rows[cat] = evaluate(run_dir, root, cat, out_dir=ev, device=args.device)
        t2 = time.perf_counter()
        rows[f"{cat} local-only"] = _local_only(run_dir, root, cat, prof, args.device)
        t3 = time.perf_counter()
        scoring = rows[cat]["seconds_per_image"] * rows[cat]["n_images"]
        print(f"{cat}: Glance trained in {t1 - t0:.0f} s and scored the test set in {scoring:.0f} s "
              f"({t1 - t0 + scoring:.0f} s; the R² check and the figure {t2 - t1 - scoring:.0f} s more), "
              f"local-only baseline {t3 - t2:.0f} s; {t3 - t0:.0f} s in all -> {ev / 'metrics.json'}")
    print(f"\nprofile {prof.name}, teacher {teacher}\n" + metrics_table(rows))
    for cat in cats:
        c = rows[cat].get("context")
        if c:
            print(f"{cat}: Global-Net R^2 {c['r2_global']:.3f} vs position mean {c['r2_position_mean']:.3f} "
                  f"on normal test patches (higher: it learned from the context)")
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    figure = out / (cats[0] if len(cats) == 1 else "CATEGORY") / "eval" / "figure.png"
    print(f"{MEANING.get(prof.name, '')}\nfigure: {figure}; summary: {out / 'summary.json'}")
    return 0


def cmd_compare(args) -> int:
    from .baselines.compare import compare
    prof = _profile(args)
    _check_data(args.data)
    compare(args.data, args.category, args.out, profile=prof, teacher=_teacher_for(args, prof), seed=args.seed,
            overwrite=args.overwrite, device=args.device, max_bank_gb=args.max_bank_gb, progress=_progress())
    return 0


COMMANDS = {"synth": cmd_synth, "train": cmd_train, "evaluate": cmd_evaluate, "demo": cmd_demo,
            "compare": cmd_compare}


def run(argv: list[str] | None = None) -> int:
    """Parse the command line and run its command (errors propagate; `main` prints them)."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as one plain line, without the source line."""
    return f"glance-lite: warning: {str(message).strip()}\n"


# what to do after Ctrl-C, per command
_AFTER_INTERRUPT = {
    "train": "run the same command again with --resume to continue from the last checkpoint",
    "demo": "run the same command again: it continues from the last checkpoints by itself",
    "compare": "run the same command again: its Glance run continues from the last checkpoint by itself",
    "synth": "run the same command again (finished categories are kept)",
    "evaluate": "run the same command again",
}


def _command(argv: list[str] | None) -> str | None:
    """The subcommand of a command line (the top level has no option that takes a value)."""
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    # The package's own errors derive from these built-ins (DataError, CheckpointError, RunError:
    # ValueError; TeacherUnavailable, TrainingDiverged: RuntimeError), so nothing heavy is imported
    # here and `--help` / `--version` answer without loading torch.
    old_format, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return run(argv)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"glance-lite: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"glance-lite: interrupted; {_AFTER_INTERRUPT.get(_command(argv), 'run the same command again')}",
              file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = old_format


if __name__ == "__main__":
    sys.exit(main())
