"""glance_lite: a teaching reimplementation of "Glancing at the Patch" (Wang et al., CVPR 2021).

The public API follows the paper's sections; see README.md for the map of files.
The names below are imported lazily (PEP 562), on first use: `import glance_lite` and the
`glance-lite` command's --help stay fast because torch is only loaded when a name needs it.
"""
from importlib import import_module

__version__ = "0.1.0"

# public name -> submodule that defines it
_SOURCES = {
    "GlobalNet": "global_net",
    "DADHead": "heads", "dad_score": "heads", "iad_score": "heads",
    "idw_maps": "idw", "idw_matrix": "idw",
    "Decoder": "local_net", "LocalNet": "local_net",
    "PartialConv2d": "partial_conv",
    "PatchGrid": "patches",
    "LAMBDA_S": "scoring", "PatchScores": "scoring", "combine": "scoring", "score_patches": "scoring",
    "add_stains": "stains", "shuffled_negatives": "stains",
    "Teacher": "teacher", "TeacherUnavailable": "teacher", "load_teacher": "teacher",
    "normalize": "teacher",
}

__all__ = [
    "LocalNet", "Decoder", "GlobalNet", "PartialConv2d", "DADHead", "iad_score", "dad_score",
    "Teacher", "TeacherUnavailable", "load_teacher", "normalize", "PatchGrid", "idw_maps",
    "idw_matrix", "PatchScores", "combine", "score_patches", "LAMBDA_S", "add_stains",
    "shuffled_negatives", "__version__",
]


def __getattr__(name: str):
    """Import the submodule that defines `name` on first access (PEP 562)."""
    if name not in _SOURCES:
        raise AttributeError(f"module 'glance_lite' has no attribute {name!r}")
    value = getattr(import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
