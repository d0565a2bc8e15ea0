"""Monte-Carlo dropout as a vote ensemble and an adversarial-input detector.

Paper: Wang, Kunin, Pyron, "Exploring Adversarial Input Spaces for Convolutional Neural Network Defense", §3.2
(after Gal & Ghahramani 2016, "Dropout as a Bayesian approximation", arXiv:1506.02142): run a collection of
forward passes "with dropout enabled between layers" and take the class with a plurality of the votes. The paper
hypothesizes that the votes vary more on adversarial inputs than on clean ones and shows the vote histogram of one
clean and one adversarial image (its Fig. 5); it gives neither the number of passes nor a detection score. The
scores below and :func:`roc_auc` turn that hypothesis into a measurable detector (advlab's extension).

Only the dropout modules are switched to train mode; everything else (batch-norm above all) stays in eval mode, so
the only randomness is the dropout masks and batch statistics never leak between images.

Scores: ``disagreement = 1 − (largest vote share)`` and ``entropy`` of the vote shares (nats); higher means "more
likely adversarial". :func:`roc_auc` measures how well a score separates clean from adversarial inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from advlab.defenses.base import TransformBase
from advlab.defenses.registry import register_defense
from advlab.errors import InputError
from advlab.modes import restored_modes

DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
)
DetectionScore = Literal["disagreement", "entropy"]


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if isinstance(module, DROPOUT_TYPES)]


@contextmanager
def dropout_active(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the whole model except its dropout modules (train mode); every mode restored in finally."""
    with restored_modes(model):
        model.eval()
        for module in dropout_modules(model):
            module.train()
        yield model


class MCDropoutEnsemble(nn.Module):
    """n passes of ``model`` with dropout on; ``forward`` returns the mean log-softmax over the passes.

    Args:
        model: a classifier with at least one dropout module (``nn.Dropout``, ``nn.Dropout2d``, ...).
        passes: n, the number of stochastic passes per forward call (default 10).
        max_batch: at most this many images per model call; passes are stacked into one batch (each image copy
            gets its own dropout mask, since batch-norm is in eval mode the copies do not interact).

    ``forward`` output, (N, num_classes): ``mean_i log_softmax(model_i(x))`` — differentiable, valid logits (not
    averaged probabilities, which would break logit-based attacks). ``stochastic = True``: evaluate with EOT.
    Votes (:meth:`vote_counts`, :meth:`vote`, :meth:`detection_score`) take the argmax of each pass.

    Example::

        ensemble = MCDropoutEnsemble(model, passes=20)
        scores = ensemble.detection_score(x_adv)          # (N,), higher = more suspicious
    """

    stochastic: ClassVar[bool] = True

    def __init__(self, model: nn.Module, passes: int = 10, max_batch: int = 4096) -> None:
        super().__init__()
        if not dropout_modules(model):
            raise InputError("MC dropout needs a model with dropout layers (nn.Dropout/Dropout2d); this one has "
                             "none. Choose an architecture with dropout or add a dropout layer and retrain.")
        if passes < 1 or max_batch < 1:
            raise InputError(f"passes and max_batch must be positive, got passes={passes}, max_batch={max_batch}")
        self.model, self.passes, self.max_batch = model, int(passes), int(max_batch)

    def pass_logits(self, x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """Logits of n independent dropout passes, shape (n, N, num_classes)."""
        n = self.passes if n is None else int(n)
        if n < 1:
            raise InputError(f"the number of passes must be positive, got {n}")
        per_call = max(1, self.max_batch // max(1, x.shape[0]))
        chunks = []
        with dropout_active(self.model):
            for start in range(0, n, per_call):
                k = min(per_call, n - start)
                stacked = x.unsqueeze(0).expand(k, *x.shape).reshape(k * x.shape[0], *x.shape[1:])
                chunks.append(self.model(stacked).view(k, x.shape[0], -1))
        return torch.cat(chunks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.pass_logits(x), dim=-1).mean(dim=0)

    @torch.no_grad()
    def vote_counts(self, x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """Votes per class over n passes, int64 (N, num_classes); each row sums to n."""
        logits = self.pass_logits(x, n)
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).sum(dim=0)

    def vote(self, x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """Plurality vote (N,) over n passes; ties go to the lowest class index."""
        return self.vote_counts(x, n).argmax(dim=-1)

    def detection_score(self, x: torch.Tensor, n: int | None = None,
                        score: DetectionScore = "disagreement") -> torch.Tensor:
        """Per-image suspicion (N,) from the vote shares: ``1 − max share`` or the vote entropy (nats)."""
        shares = self.vote_counts(x, n).float()
        shares = shares / shares.sum(dim=-1, keepdim=True)
        if score == "disagreement":
            return 1.0 - shares.amax(dim=-1)
        if score == "entropy":
            return -(shares * shares.clamp_min(1e-12).log()).sum(dim=-1)
        raise InputError(f"score must be 'disagreement' or 'entropy', got {score!r}")

    def extra_repr(self) -> str:
        return f"passes={self.passes}"


def roc_auc(negative_scores: torch.Tensor, positive_scores: torch.Tensor) -> float:
    """Area under the ROC curve for "positive scores higher" (Mann–Whitney U / (n_neg · n_pos)).

    Equals the probability that a random positive (adversarial) input scores above a random negative (clean)
    one, ties counting one half: 1.0 for perfect separation, 0.5 for identical or uninformative scores. Uses
    average ranks, O(n log n). Shapes: (n_neg,), (n_pos,), both non-empty.
    """
    negative = torch.as_tensor(negative_scores).detach().flatten().double().cpu()
    positive = torch.as_tensor(positive_scores).detach().flatten().double().cpu()
    if negative.numel() == 0 or positive.numel() == 0:
        raise InputError("ROC AUC needs at least one clean and one adversarial score")
    scores = torch.cat([negative, positive])
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    # Average 1-based rank of each distinct value: ranks below it, plus the mean of its own block of ties.
    below = torch.cumsum(counts, 0) - counts
    average_rank = below.double() + (counts.double() + 1.0) / 2.0
    positive_rank_sum = average_rank[inverse[negative.numel():]].sum()
    n_pos, n_neg = positive.numel(), negative.numel()
    u_statistic = positive_rank_sum - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def detection_auc(ensemble: MCDropoutEnsemble, clean: torch.Tensor, adversarial: torch.Tensor,
                  n: int | None = None, score: DetectionScore = "disagreement") -> float:
    """ROC AUC of :meth:`MCDropoutEnsemble.detection_score` for clean (negative) vs adversarial (positive)."""
    return roc_auc(ensemble.detection_score(clean, n, score), ensemble.detection_score(adversarial, n, score))


@register_defense("mc_dropout", stochastic=True, paper="Wang, Kunin, Pyron, Exploring adversarial input spaces",
                  summary="n passes with dropout on: vote ensemble and vote-disagreement detector")
@dataclass(frozen=True, kw_only=True)
class MCDropoutTransform(TransformBase):
    """The ``mc_dropout`` defense as a model transform: ``apply(model)`` wraps it in :class:`MCDropoutEnsemble`."""

    name: ClassVar[str] = "mc_dropout"
    stochastic: ClassVar[bool] = True

    passes: int = 10
    max_batch: int = 4096

    def apply(self, model: nn.Module) -> MCDropoutEnsemble:
        return MCDropoutEnsemble(model, passes=self.passes, max_batch=self.max_batch)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "passes": self.passes, "max_batch": self.max_batch}
