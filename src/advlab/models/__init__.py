"""Models of the papers, behind one registry. Each takes [0, 1] images and returns logits."""
from advlab.models.layers import Normalize
from advlab.models.registry import MODELS, count_parameters, create_model, list_models, register_model

__all__ = ["MODELS", "Normalize", "count_parameters", "create_model", "list_models", "register_model"]
