"""ONE ``fit()`` loop shared by every model and defense (DESIGN.md §3.5); the code lives in ``advlab.training``.

Example::

    from advlab.train import TrainConfig, fit
    from advlab.objectives import CrossEntropy

    result = fit(model, train_set, config=TrainConfig(epochs=1, optimizer="adam", lr=1e-3),
                 objective=CrossEntropy(), val_set=test_set, out_dir="runs/mnist")
    print(result.final["val_acc"], result.best_checkpoint)
"""
from advlab.objectives import CrossEntropy, HookedObjective, Objective, ObjectiveBase, TrainingObjective
from advlab.seed import seed_everything
from advlab.training.config import TrainConfig
from advlab.training.loop import EvalHook, TrainResult, evaluate, fit

__all__ = ["CrossEntropy", "EvalHook", "HookedObjective", "Objective", "ObjectiveBase", "TrainConfig", "TrainResult",
           "TrainingObjective", "evaluate", "fit", "seed_everything"]
