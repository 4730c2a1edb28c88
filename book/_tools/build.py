"""Build the book with an execution cache, so that a rebuild after a prose-only edit is cheap.

    python book/_tools/build.py --profile cpu            # = GLANCE_PROFILE=cpu jupyter-book build . -W
    python book/_tools/build.py --profile cpu --times    # also print each chapter's execution time

`_config.yml` re-executes every chapter on every build (`execute_notebooks: force`): safe, and what
the tests and the publishing workflow use. This script builds with `execute_notebooks: cache`
instead (jupyter-cache, through myst-nb). jupyter-cache re-executes a notebook only when its code
cells change, so a prose edit costs seconds. It does not know what else the outputs depend on, so
the cache folder is keyed on them here: the profile (a `smoke` output must never stand in for a
`cpu` one) and the package's source (`glance_lite/**/*.py`, `*.json`). Any change to either starts
a new, empty cache. Trained models are reused anyway: they live under `runs/book/` (preface).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("smoke", "cpu", "colab", "paper", "auto")


def package_digest(root: Path = ROOT) -> str:
    """8 hex digits of a hash over the package's source files (path and content)."""
    h = hashlib.sha256()
    files = sorted(p for p in (root / "glance_lite").rglob("*") if p.suffix in (".py", ".json"))
    for p in files:
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:8]


def cached_config(profile: str, root: Path = ROOT) -> Path:
    """_build/_config.<profile>.yml: _config.yml with the execution cache keyed on profile + source."""
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    cfg.setdefault("execute", {}).update(
        execute_notebooks="cache",
        cache=str(root / "_build" / ".jupyter_cache" / f"{profile}-{package_digest(root)}"))
    ext = cfg.get("sphinx", {}).get("local_extensions") or {}
    for name, folder in ext.items():  # resolved against the config file's folder: make them absolute
        ext[name] = str(root / folder)
    out = root / "_build" / f"_config.{profile}.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def execution_times(cache: Path) -> list[tuple[str, float]]:
    """(notebook, seconds) of the last execution of every notebook in a jupyter-cache folder."""
    from jupyter_cache import get_cache
    records = get_cache(cache).list_cache_records()
    return sorted((Path(r.uri).name if getattr(r, "uri", None) else str(r.pk),
                   float(r.data.get("execution_seconds") or 0.0)) for r in records)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("GLANCE_PROFILE", "smoke"), choices=PROFILES)
    ap.add_argument("--times", action="store_true", help="print each chapter's execution time")
    args, rest = ap.parse_known_args(argv)
    config = cached_config(args.profile)
    env = dict(os.environ, GLANCE_PROFILE=args.profile)
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(ROOT), "-W", "--config", str(config)]
    rc = subprocess.call(cmd + rest, env=env)
    if args.times and rc == 0:
        cache = Path(yaml.safe_load(config.read_text())["execute"]["cache"])
        for name, seconds in execution_times(cache):
            print(f"{seconds:7.0f} s  {name}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
