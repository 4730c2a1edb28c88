"""Experiment: benchmarks/global_phase.py with GREY context stains (`stains.context_stains(...,
grey=True)`: one random grey level per stain), to test whether the random-colour context stains
teach Global-Net to discard colour (fabric's wrong-ink dots; README, fabric bullet).

    python benchmarks/grey_context_stains.py runs/accuracy/cpu-centred/fabric/seed1/glance_run \
        runs/exp/fab_c1_grey --data data/synthetic --category fabric --seed 1

Same arguments as global_phase.py. Measured 1 Dec 2026 on runs with random-colour stains:
fabric seed 1 PRO 0.8999 -> 0.923 (colour 0.775 -> 0.858), ink read from layer 1_2 0.43 -> 0.76
(`benchmarks/context_error.py`); cable seed 1 PRO 0.984 either way. The grey draws consume fewer
random numbers, so the holes and shifts of later steps differ from the colour run's too.
Since then grey stains are the short profiles' default (`Profile.context_stain_grey`, after the
whole benchmark, README); this script still forces them whatever the source run's profile says,
and `python benchmarks/global_phase.py ... --set context_stain_grey=False` runs the colour ones.
"""
import sys
from pathlib import Path

import glance_lite.context_train as ct
from glance_lite.stains import context_stains

sys.path.insert(0, str(Path(__file__).resolve().parent))
import global_phase  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """global_phase.main with grey context stains (context_step calls context_train.context_stains)."""
    plain = ct.context_stains
    ct.context_stains = lambda *args, **kw: context_stains(*args, **{**kw, "grey": True})  # whatever the call says
    try:
        return global_phase.main(argv)
    finally:
        ct.context_stains = plain


if __name__ == "__main__":
    raise SystemExit(main())
