"""Pure metric functions (numpy in, floats out)."""
from .classification import accuracy, topk_hits  # noqa: F401
from .retrieval import retrieval_metrics, ranks_from_scores  # noqa: F401
from .caption import caption_metrics  # noqa: F401
