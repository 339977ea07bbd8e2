"""Models: Video Swin 3D, the LAVENDER model, its factory (settings, starting weights) and weight loading
for every checkpoint layout."""
from ..errors import CheckpointError
from .factory import build_model, create_model, model_config
from .lavender import TASK_TOK2ID, Lavender, ModelConfig, compile_encoders
from .video_swin import SwinConfig, SwinTransformer3D
from .weights import LoadReport, load_torch_file, load_weights

__all__ = ["Lavender", "ModelConfig", "build_model", "create_model", "compile_encoders", "model_config",
           "TASK_TOK2ID", "load_weights", "LoadReport", "CheckpointError", "load_torch_file", "SwinConfig",
           "SwinTransformer3D"]
