"""glance_lite: a teaching reimplementation of "Glancing at the Patch" (Wang et al., CVPR 2021).

The public API follows the paper's sections; see README.md for the map of files.
"""
from .global_net import GlobalNet
from .heads import DADHead, dad_score, iad_score
from .idw import idw_maps, idw_matrix
from .local_net import Decoder, LocalNet
from .partial_conv import PartialConv2d
from .patches import PatchGrid
from .scoring import LAMBDA_S, PatchScores, combine, score_patches
from .stains import add_stains, shuffled_negatives
from .teacher import Teacher, TeacherUnavailable, load_teacher, normalize

__version__ = "0.1.0"

__all__ = [
    "LocalNet", "Decoder", "GlobalNet", "PartialConv2d", "DADHead", "iad_score", "dad_score",
    "Teacher", "TeacherUnavailable", "load_teacher", "normalize", "PatchGrid", "idw_maps",
    "idw_matrix", "PatchScores", "combine", "score_patches", "LAMBDA_S", "add_stains",
    "shuffled_negatives", "__version__",
]
