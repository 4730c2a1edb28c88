"""glance_lite: a teaching reimplementation of "Glancing at the Patch" (Wang et al., CVPR 2021)."""

__version__ = "0.1.0"
