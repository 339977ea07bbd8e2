"""Weights loading for every checkpoint layout: reading files safely (files.py), the layouts and their key
mappings (layouts.py), shape adaptation (adapt.py), the report (report.py) and the loader (load.py)."""
from ...errors import CheckpointError
from .files import HF_WEIGHT_FILES, load_torch_file, read_state_dict, unwrap
from .layouts import SWINBERT_RENAMES, detect_layout
from .load import load_state_dict_into, load_weights
from .report import LoadReport, short_list

__all__ = ["CheckpointError", "HF_WEIGHT_FILES", "LoadReport", "SWINBERT_RENAMES", "detect_layout", "load_state_dict_into",
           "load_torch_file", "load_weights", "read_state_dict", "short_list", "unwrap"]
