"""One attack, several budgets, one dataset: what ``advlab attack`` runs, and saving its adversarial examples."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from advlab.attacks.registry import create_attack
from advlab.data.dataset import ImageDataset
from advlab.errors import InputError
from advlab.evaluate.runner import AttackRun, run_attack
from advlab.evaluate.targets import target_rule
from advlab.io import write_bytes


@dataclass
class CampaignRow:
    """The outcome of the attack at one budget (``eps`` None for unbounded attacks such as C&W or DeepFool)."""

    eps: float | None
    run: AttackRun


def run_attack_campaign(
    model: nn.Module,
    data: ImageDataset,
    attack_name: str,
    *,
    epsilons: Sequence[float] = (),
    settings: Mapping[str, Any] | None = None,
    targeted: str | None = None,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device | None = None,
    keep_adversarial: bool = False,
) -> list[CampaignRow]:
    """Run the registered attack ``attack_name`` once per ε (or once if it has no ε) over ``data``.

    ``settings`` go to the attack's constructor; ``targeted`` is a rule of :func:`target_rule`.
    """
    import advlab.attacks  # noqa: F401 - registers every attack

    base = create_attack(attack_name, **dict(settings or {}))
    if epsilons and not base.is_bounded():
        raise InputError(f"attack {attack_name!r} has no eps budget (it minimizes the perturbation); drop --eps")
    budgets: list[float | None] = list(epsilons) if epsilons else [getattr(base, "eps", None)]
    target = None
    if targeted:
        with torch.no_grad():
            probe, _ = next(data.batches(1, device=device))
            num_classes = int(model(probe).shape[1])
        target = target_rule(targeted, model, num_classes, seed)
    rows = []
    for eps in budgets:
        attack = base.at(eps) if eps is not None and base.is_bounded() else base
        torch.manual_seed(seed)  # random starts and noise draws repeat from run to run
        rows.append(CampaignRow(eps, run_attack(model, data, attack, target=target, batch_size=batch_size,
                                                device=device, keep_adversarial=keep_adversarial)))
    return rows


def save_adversarial(path: str | Path, rows: Sequence[CampaignRow]) -> None:
    """Write the adversarial images of each row with labels and predictions, as safetensors or npz (atomic).

    Keys: ``adv_<i>`` float32 (N, C, H, W) in [0, 1], ``adv_pred_<i>`` (N,), ``eps_<i>`` (a 0-d tensor, NaN when
    unbounded), and ``labels`` (N,). ``i`` counts the budgets in the order given.
    """
    path = Path(path)
    if path.suffix not in (".safetensors", ".npz"):
        raise InputError(f"--save-adv must end in .safetensors or .npz, got {path.name}")
    tensors: dict[str, torch.Tensor] = {"labels": rows[0].run.labels}
    for index, row in enumerate(rows):
        if row.run.adv is None:
            raise InputError("the campaign kept no adversarial images; run it with keep_adversarial=True")
        tensors[f"adv_{index}"] = row.run.adv.float().contiguous()
        tensors[f"adv_pred_{index}"] = row.run.adv_pred
        tensors[f"eps_{index}"] = torch.tensor(float("nan") if row.eps is None else row.eps)
    if path.suffix == ".safetensors":
        write_bytes(path, safetensors.torch.save(tensors))
    else:
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {key: value.cpu().numpy() for key, value in tensors.items()}
        np.savez_compressed(buffer, **arrays)
        write_bytes(path, buffer.getvalue())
