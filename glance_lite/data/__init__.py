"""Datasets for glance_lite (paper Sec. 4.1).

* MVTec AD layout loader: :func:`load_mvtec`, :func:`list_categories`, :class:`MVTecSplit`.
* Offline synthetic MVTec-format data with structural and logical defects:
  :func:`make_synthetic`, :data:`SYNTHETIC_CATEGORIES`, :data:`DEFECT_KINDS`.
* One-class splits (GradCon protocol) and distillation images:
  :func:`one_class_split`, :func:`distillation_images`, :func:`random_crops`.
* Robust file reading: :func:`load_image`, :func:`load_mask`.
* Download + safe extraction of the real MVTec AD: :func:`download_mvtec`, :func:`safe_extract`.

Every bad input raises :class:`DataError` (a ValueError) naming the file or value.
Heavy optional imports (sklearn, torchvision, matplotlib, tqdm) happen inside functions.
"""

from .errors import DataError
from .images import IMAGE_EXTENSIONS, load_image, load_mask
from .mvtec import MVTecSplit, list_categories, load_mvtec
from .synthetic import CATEGORY_DEFECTS, DEFECT_KINDS, SYNTHETIC_CATEGORIES, make_synthetic
from .natural import (OneClassSplit, distillation_images, distillation_images_or_offline, one_class_split,
                      random_crops)
from .download import MVTEC_URL, download_mvtec, safe_extract

__all__ = [
    "DataError", "IMAGE_EXTENSIONS", "load_image", "load_mask",
    "MVTecSplit", "list_categories", "load_mvtec",
    "CATEGORY_DEFECTS", "DEFECT_KINDS", "SYNTHETIC_CATEGORIES", "make_synthetic",
    "OneClassSplit", "distillation_images", "distillation_images_or_offline", "one_class_split", "random_crops",
    "MVTEC_URL", "download_mvtec", "safe_extract",
]
