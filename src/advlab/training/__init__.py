"""The training package behind ``advlab.train``: config, optimizer and schedules, resumable state, the loop."""
from advlab.training.config import TrainConfig
from advlab.training.loop import TrainResult, evaluate, fit
from advlab.training.optim import build_optimizer, lr_multiplier, param_groups

__all__ = ["TrainConfig", "TrainResult", "build_optimizer", "evaluate", "fit", "lr_multiplier", "param_groups"]
