"""Models: Video Swin 3D, the LAVENDER model, and weight loading for every checkpoint layout."""
from ..errors import CheckpointError
from .weights import LoadReport, load_torch_file, load_weights
from .lavender import TASK_TOK2ID, Lavender, ModelConfig, build_model, compile_encoders, model_config
from .video_swin import SwinConfig, SwinTransformer3D

__all__ = ["Lavender", "ModelConfig", "build_model", "compile_encoders", "model_config", "TASK_TOK2ID",
           "load_weights", "LoadReport", "CheckpointError", "load_torch_file", "SwinConfig", "SwinTransformer3D"]
