"""glance_lite: a teaching reimplementation of "Glancing at the Patch" (Wang et al., CVPR 2021).

The short path:

    import glance_lite as gl
    run = gl.train("data/synthetic", "circuit", "runs/circuit", profile="cpu")
    model = gl.load_model(run)
    test = gl.load_mvtec("data/synthetic", "circuit", "test")
    maps = model.anomaly_maps(test.images)          # (N, 256, 256)
    report = gl.evaluate(run, "data/synthetic", "circuit")

The building blocks follow the paper's sections (LocalNet, GlobalNet, PartialConv2d, DADHead, ...).
Names are imported lazily (PEP 562), on first use: `import glance_lite` and the `glance-lite`
command's --help stay fast because torch is only loaded when a name needs it.
"""
from importlib import import_module

__version__ = "0.1.0"

# public name -> submodule that defines it
_SOURCES = {
    # the short path: train, load, score, evaluate, compare
    "train": "training", "load_model": "model", "Glance": "model", "evaluate": "evaluation",
    "compare": "baselines.compare", "load_mvtec": "data", "make_synthetic": "data",
    "get_profile": "profiles", "Profile": "profiles", "Deviations": "profiles",
    "resolve_teacher": "teacher",
    # the building blocks, in the order of the paper
    "LocalNet": "local_net", "Decoder": "local_net", "Teacher": "teacher", "load_teacher": "teacher",
    "TeacherUnavailable": "teacher", "normalize": "teacher",
    "PartialConv2d": "partial_conv", "GlobalNet": "global_net",
    "DADHead": "heads", "iad_score": "heads", "dad_score": "heads",
    "add_stains": "stains", "shuffled_negatives": "stains",
    "PatchGrid": "patches", "idw_maps": "idw", "idw_matrix": "idw",
    "LAMBDA_S": "scoring", "PatchScores": "scoring", "combine": "scoring",
}

__all__ = [*_SOURCES, "__version__"]


def __getattr__(name: str):
    """Import the submodule that defines `name` on first access (PEP 562)."""
    if name not in _SOURCES:
        raise AttributeError(f"module 'glance_lite' has no attribute {name!r}")
    value = getattr(import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
