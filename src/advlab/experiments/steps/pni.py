"""Rakin, He, Fan, "Parametric Noise Injection" (CVPR 2019, arXiv:1811.09310), CIFAR-10.

The paper's protocol (§4.1, 002:L124-126) for every white-box row: PGD with ε = 8/255 and N_step = 7 started at
x̂¹ = x (Eq. 2), no EOT, FGSM with the same ε, and mean ± std over ``trials`` (5) repetitions of clean, PGD and
FGSM accuracy (a noisy model draws fresh noise each trial). advlab's stronger protocol for randomized models (EOT
gradients and a random start) runs beside it as rows labelled "extension".

Steps:
    * Tables 1-2 (ResNet-20): vanilla adversarial training and PNI adversarial training (Eq. 11: 0.5·CE(x) +
      0.5·CE(x̂), x̂ by PGD from x on the predicted labels, Eq. 12) at every location in ``settings.locations``
      (W, I, A-a, A-b, W+A-a, W+A-b), each tested with and without its noise; Table 1's three training schemes
      for PNI-W: (i) clean training, (ii) adversarial training with PNI off while x̂ is generated, (iii) with it
      on (= Table 2's PNI-W), their layer-wise α and the α trace over training (Fig. 2, ``alpha_per_epoch.png``).
    * Table 3: ResNet-32/44/56 and ResNet-20 ×1.5/×2/×4, each without defense, with vanilla adversarial training
      and with PNI-W (tested with and without noise), plus each network's parameter count.
    * Table 4: C&W-L2 (``CarliniWagnerL2.pni()``) on ResNet-20 ×4 and ResNet-18 (no defense, vanilla, PNI-W).
    * Table 5: transferred PGD between ResNet-18 A (vanilla adversarial training) and B (PNI-W, PNI-A-a,
      PNI-W+A-a) in both directions, mean ± std over trials; ZOO untargeted success rate on A and every B.
    * Table 6 and the text: the same measurements under the keys of Table 6's cells and of the text's numbers
      (PNI-W minus vanilla on ResNet-20, ZOO on vanilla ResNet-18, C&W success, 0 % accuracy at the largest ε).
    * Fig. 3: PGD accuracy of vanilla and PNI-W against ε and against N_step (``fig3_pgd_sweeps.png``).
    * Extension: the worst case of advlab's cascade (``worst_case_suite``, default the standard one: APGD-CE,
      APGD-T, Square) on vanilla and PNI-W ResNet-20, with EOT and repeated trials for PNI-W; PNI-W's first
      trial is then re-judged on fresh noise draws at the examples it kept (how much of it the draw accounts for).

A scale runs the parts named in ``sections`` (Tables 1-2's ResNet-20 rows always).

Networks are trained from scratch (``init = "scratch"``), or -- at reduced scales -- the ResNet-20 rows fine-tune
the pretrained, undefended ResNet-20 (``init = "pretrained"``), which is then also Table 3's undefended ResNet-20.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.attacks import FGSM, PGD, ZOO, CarliniWagnerL2
from advlab.data.dataset import ImageDataset
from advlab.defenses.adversarial_training import PGDAdversarialTraining
from advlab.defenses.pni import ACTIVATION_STDS, ActivationStd, PNITransform, pni_alphas, pni_disabled
from advlab.errors import InputError
from advlab.evaluate import evaluate_attack, run_attack, transfer_matrix
from advlab.evaluate.randomness import declares_stochastic, draw_accuracy, mean_std, seeded
from advlab.experiments.runner import ExperimentContext, Measurement, register_experiment
from advlab.experiments.steps.common import (
    load_split,
    measured_once,
    network_folder,
    new_figure,
    pretrained_resnet20,
    save_figure,
    train_model,
)
from advlab.io import write_json
from advlab.models.registry import count_parameters, create_model
from advlab.objectives import CrossEntropy
from advlab.seed import seed_everything

# Table 3's networks: key -> (registered model, width multiplier).
TABLE3_NETS: dict[str, tuple[str, float]] = {
    "resnet32": ("resnet32", 1.0), "resnet44": ("resnet44", 1.0), "resnet56": ("resnet56", 1.0),
    "resnet20w1.5": ("resnet20", 1.5), "resnet20w2": ("resnet20", 2.0), "resnet20w4": ("resnet20", 4.0),
}
# The parts a scale may run (``sections``; all by default): Table 1's training schemes, Table 3's networks, the
# ResNet-18s with Table 5, Table 4 (C&W), Fig. 3, and advlab's worst case (an extension). Tables 1-2's ResNet-20
# rows always run.
SECTIONS = ("table1", "table3", "resnet18", "table4", "fig3", "worst_case")
# Fig. 2 plots the α of the first five layers of ResNet-20 (the bold rows of Table 1).
FRONT_LAYERS = 5
ALPHA_TRACE_POINTS = 400  # at most this many α snapshots per training run are kept in the results
# Fresh noise draws per point when a noisy model's worst-case examples are re-judged (our choice).
REDRAWS = 20


@register_experiment("pni", paper="Rakin, He, Fan 2019 (arXiv:1811.09310)")
def pni_experiment(ctx: ExperimentContext) -> list[Measurement]:
    s = ctx.settings
    train_set, test_set = load_split(ctx, "train", "n_train"), load_split(ctx, "test", "n_test")
    scratch_train = _subset(train_set, s.get("n_train_scratch"), int(s.get("seed", 0)))
    scratch_test = _subset(test_set, s.get("n_test_scratch"), int(s.get("seed", 0)))
    run = _Run(ctx, _Protocol.from_settings(s))
    sections = _sections(s)
    out: list[Measurement] = []
    with run.timed("tables 1-2 (resnet20)"):
        out += _resnet20_tables(run, train_set, test_set, table1="table1" in sections)
    if "worst_case" in sections:
        with run.timed("worst case (advlab's cascade)"):
            out += _worst_case(run, test_set)
    if "table3" in sections:
        with run.timed("table 3 (depth/width)"):
            out += _table3(run, scratch_train, scratch_test)
    if "resnet18" in sections:
        with run.timed("resnet18 training"):
            out += _train_resnet18(run, scratch_train)
        with run.timed("table 5 (transfer, ZOO)"):
            out += _table5(run, scratch_test)
    if "table4" in sections:
        with run.timed("table 4 (C&W)"):
            out += _table4(run, scratch_test)
    if "fig3" in sections:
        with run.timed("fig. 3 (sweeps)"):
            out += _fig3(run, test_set if s.get("fig3_model", "resnet18") == "resnet20" else scratch_test)
    out += _table6_and_text(run)
    # The results table shows the paper's label for a reported key; ours (images, trials, fallbacks) is kept here.
    ctx.extras["measurement_labels"] = {m.key: m.label for m in out}
    return out


def _sections(s: dict[str, Any]) -> set[str]:
    """The parts the scale runs, checked: known names, a list, and Fig. 3's networks trained by a part that runs."""
    chosen = s.get("sections", list(SECTIONS))
    if not isinstance(chosen, list) or not all(isinstance(name, str) for name in chosen):
        raise InputError(f"sections must be a list of names from {', '.join(SECTIONS)}, got {chosen!r}")
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        raise InputError(f"unknown pni sections {unknown}; choose from {', '.join(SECTIONS)}")
    if "fig3" in chosen and s.get("fig3_model", "resnet18") == "resnet18" and "resnet18" not in chosen:
        raise InputError("sections: fig3 on ResNet-18 needs the resnet18 section (or fig3_model = \"resnet20\")")
    return set(chosen)


# --- protocol ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Protocol:
    """The attacks and repetitions of one scale: the paper's (``pgd``, ``fgsm``, ``trials``) and advlab's EOT."""

    eps: float
    step_size: float
    steps: int
    trials: int
    eot_samples: int
    eot_trials: int
    seed: int

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> _Protocol:
        return cls(eps=float(s["eps"]), step_size=float(s["step_size"]), steps=int(s["pgd_steps"]),
                   trials=int(s.get("trials", 5)), eot_samples=int(s.get("eot_samples", 10)),
                   eot_trials=int(s.get("eot_trials", s.get("trials", 5))), seed=int(s.get("seed", 0)))

    def pgd(self, eps: float | None = None, steps: int | None = None, step_size: float | None = None) -> PGD:
        """Eq. 2: x̂¹ = x, sign steps, projection on the ε-ball; every sample gets all steps (no early stop)."""
        return PGD(eps=self.eps if eps is None else eps, steps=self.steps if steps is None else steps,
                   step_size=self.step_size if step_size is None else step_size, random_start=False,
                   early_stop=False)

    def fgsm(self) -> FGSM:
        return FGSM(eps=self.eps)

    def eot_pgd(self) -> PGD:
        """advlab's protocol for a randomized model: random start, EOT gradients (added by the evaluation)."""
        return PGD(eps=self.eps, steps=self.steps, step_size=self.step_size, random_start=True, early_stop=False)


class _Run:
    """The context, the protocol, the trained models by key and the timing of each part."""

    def __init__(self, ctx: ExperimentContext, protocol: _Protocol) -> None:
        self.ctx, self.protocol = ctx, protocol
        self.settings = ctx.settings
        self.models: dict[str, nn.Module] = {}
        self.values: dict[str, Measurement] = {}

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        """Record the wall and CPU seconds of one part (CPU time tells the cost on a shared machine)."""
        begin, cpu = time.perf_counter(), time.process_time()
        yield
        seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu
        self.ctx.extras.setdefault("timing_s", {})[part] = {"wall": round(seconds, 1), "cpu": round(cpu, 1)}
        self.ctx.log(f"{part}: {seconds:.1f} s wall, {cpu:.1f} s CPU")

    def keep(self, rows: list[Measurement]) -> list[Measurement]:
        for row in rows:
            self.values[row.key] = row
        return rows

    def evaluate(self, model: nn.Module, data: ImageDataset, attack: Any, *, eot: bool = False,
                 trials: int | None = None) -> Any:
        """One attack over ``data``: ``trials`` repetitions when the model is randomized (one otherwise)."""
        p = self.protocol
        return evaluate_attack(model, data, attack, device=self.ctx.device, eot=eot, eot_samples=p.eot_samples,
                               trials=trials or p.trials, seed=p.seed)


# --- training ------------------------------------------------------------------------------------------------------

class _AlphaTrace:
    """A training objective that records every PNI α before each step (Fig. 2's evolution curves).

    Delegates the loss, ``describe`` and the ``fit`` hooks to ``objective``; ``points`` holds
    ``(epochs done, {α name: value})`` pairs, thinned to at most :data:`ALPHA_TRACE_POINTS` by :meth:`thinned`.
    With ``saved`` (a checkpointed network's folder gets ``alpha_trace.json``) the thinned trace is written at every
    epoch start and at the end, and a network resumed by a later process continues the trace of the epochs it
    keeps, so Fig. 2 covers the whole training however many processes it took.
    """

    def __init__(self, objective: Any, saved: Path | None = None) -> None:
        self.objective = objective
        self.saved = saved
        self.points: list[tuple[float, dict[str, float]]] = []
        # An earlier process's points, merged once this process knows which epoch it starts at.
        self._earlier: list[tuple[float, dict[str, float]]] | None = _read_trace(saved)
        self._done = 0.0
        self._after = 0.0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.points.append((self._done, pni_alphas(model)))
        self._done = self._after
        return self.objective(model, x, y)

    def on_batch_start(self, epochs_done: float) -> None:
        self._after = float(epochs_done)  # the progress once this batch is done
        hook = getattr(self.objective, "on_batch_start", None)
        if hook is not None:
            hook(epochs_done)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        if self._earlier is not None:  # the first epoch this process trains: keep the epochs before it
            self.points = [point for point in self._earlier if point[0] < epoch]
            self._earlier = None
        self._done = float(epoch)
        self._save()
        hook = getattr(self.objective, "on_epoch_start", None)
        if hook is not None:
            hook(model, epoch)

    def describe(self) -> dict[str, Any]:
        return self.objective.describe()

    def finish(self, model: nn.Module) -> None:
        if self._earlier is not None:  # an earlier process trained it to the end: its trace is the whole one
            self.points, self._earlier = self._earlier, None
        else:
            self.points.append((self._done, pni_alphas(model)))
        self._save()

    def thinned(self) -> list[tuple[float, dict[str, float]]]:
        step = max(1, math.ceil(len(self.points) / ALPHA_TRACE_POINTS))
        kept = self.points[::step]
        return kept if kept[-1] is self.points[-1] else [*kept, self.points[-1]]

    def _save(self) -> None:
        if self.saved is not None and self.points:
            write_json(self.saved, {"trace": [{"epoch": round(done, 4), "alpha": alphas}
                                              for done, alphas in self.thinned()]})


def _read_trace(path: Path | None) -> list[tuple[float, dict[str, float]]] | None:
    """The points an earlier process saved at ``path`` (None where there is no readable trace: it starts anew)."""
    if path is None or not path.is_file():
        return None
    try:
        points = json.loads(path.read_text(encoding="utf-8"))["trace"]
        return [(float(point["epoch"]), {str(k): float(v) for k, v in point["alpha"].items()}) for point in points]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _objective(run: _Run, *, adversarial: bool, pni_in_generation: bool = True) -> Any:
    """Eq. 11 with PGD from x on the predicted labels (§3.1), or plain cross-entropy (``adversarial=False``).
    ``train_attack_precision`` (fp32 unless a scale sets it) is the precision of that inner PGD."""
    if not adversarial:
        return CrossEntropy()
    p, s = run.protocol, run.settings
    return PGDAdversarialTraining.pni(eps=p.eps, step_size=p.step_size, steps=int(s.get("train_pgd_steps", p.steps)),
                                      pni_in_generation=pni_in_generation,
                                      attack_precision=str(s.get("train_attack_precision", "fp32")))


def _build(run: _Run, net: str, location: str | None, *, scratch: bool) -> nn.Module:
    """The network ``net`` (a Table 3 key, "resnet20" or "resnet18"), with PNI at ``location`` when given; built
    from the preset's seed, so a network starts from the same weights in every run."""
    s = run.settings
    seed_everything(int(s.get("seed", 0)))
    if not scratch and net == "resnet20" and s.get("init") == "pretrained":
        model = pretrained_resnet20(run.ctx)
    else:
        arch, width = TABLE3_NETS.get(net, (net, 1.0))
        model = create_model(arch, **({"width": width} if width != 1.0 else {}))
    return model if location is None else _pni(run, location).apply(model)


def _pni(run: _Run, location: str) -> PNITransform:
    """The preset's PNI at ``location`` (layer-wise α); its description goes on the network's card, so that
    ``advlab evaluate --weights`` rebuilds the noise layers around the saved weights."""
    s = run.settings
    return PNITransform(locations=location, alpha_init=float(s.get("alpha_init", 0.25)),
                        activation_std=_activation_std(str(s.get("activation_std", "tensor"))))


def _activation_std(value: str) -> ActivationStd:
    """The preset's ``activation_std`` as inject_pni takes it; anything else is inject_pni's own InputError."""
    if value == "sample":
        return "sample"
    if value == "tensor":
        return "tensor"
    raise InputError(f"PNI activation_std must be one of {', '.join(ACTIVATION_STDS)}, got {value!r}")


def _train(run: _Run, net: str, scheme: str, location: str | None, train_set: ImageDataset, *,
           adversarial: bool = True, pni_in_generation: bool = True, scratch: bool = False) -> nn.Module:
    """Build and train one model; PNI models record their α trace under ``extras["alpha_trace"][key]``."""
    s = run.settings
    key = f"{net}.{scheme}"
    model = _build(run, net, location, scratch=scratch)
    objective: Any = _objective(run, adversarial=adversarial, pni_in_generation=pni_in_generation)
    folder = network_folder(run.ctx, key)
    trace = None if location is None else _AlphaTrace(objective, folder / "alpha_trace.json" if folder else None)
    overrides: dict[str, Any] = {"no_weight_decay": ("*pni_alpha*",) if location is not None else ()}
    if scratch and s.get("scratch_lr") is not None:
        overrides["lr"] = float(s["scratch_lr"])
    defenses = {"defenses": [_pni(run, location).describe()]} if location is not None else {}
    model = train_model(run.ctx, net, train_set, model=model, objective=trace or objective, label=key,
                        card_extra=defenses, **overrides)
    if trace is not None:
        trace.finish(model)
        run.ctx.extras.setdefault("alpha_trace", {})[key] = [
            {"epoch": round(done, 4), "alpha": alphas} for done, alphas in trace.thinned()]
    run.models[key] = model
    return model


def _subset(data: ImageDataset, n: Any, seed: int) -> ImageDataset:
    return data.subset(int(n), seed) if n else data


# --- the white-box rows of Tables 1-3 ------------------------------------------------------------------------------

def _paper_rows(run: _Run, key: str, table: str, name: str, model: nn.Module, data: ImageDataset
                ) -> list[Measurement]:
    """Clean / PGD / FGSM accuracy, the paper's protocol: mean (± std when the model is random) over trials."""
    p = run.protocol
    pgd, fgsm = run.evaluate(model, data, p.pgd()), run.evaluate(model, data, p.fgsm())
    clean, clean_std = mean_std([t.clean_accuracy for t in pgd.trials])
    spread = len(pgd.trials) > 1  # a randomized model: the spread over the repeated trials is measured

    def std(value: float) -> float | None:
        return value if spread else None

    protocol = f"{len(pgd.trials)} trial{'s' if spread else ''}, {len(data)} images"
    return [
        Measurement(f"{key}.clean_acc", table, f"{name}: clean accuracy ({protocol})", clean, std=std(clean_std)),
        Measurement(f"{key}.pgd_acc", table, f"{name}: PGD-{p.steps} from x, no EOT ({protocol})",
                    pgd.robust_accuracy, std=std(pgd.robust_accuracy_std)),
        Measurement(f"{key}.fgsm_acc", table, f"{name}: FGSM, no EOT ({protocol})", fgsm.robust_accuracy,
                    std=std(fgsm.robust_accuracy_std)),
    ]


def _eot_rows(run: _Run, key: str, name: str, model: nn.Module, data: ImageDataset) -> list[Measurement]:
    """advlab's protocol for a randomized model: EOT gradients (and a random start for PGD), ``eot_trials``."""
    p = run.protocol
    table = "extension: EOT evaluation of a randomized model (Athalye et al. 2018)"
    rows = []
    data = _subset(data, run.settings.get("eot_images"), p.seed)
    for suffix, attack, label in (("pgd_acc_eot", p.eot_pgd(), f"PGD-{p.steps}, random start"),
                                  ("fgsm_acc_eot", p.fgsm(), "FGSM")):
        point = run.evaluate(model, data, attack, eot=True, trials=p.eot_trials)
        rows.append(Measurement(f"{key}.{suffix}", table,
                                f"{name}: {label}, EOT-{p.eot_samples} gradients ({len(point.trials)} trials, "
                                f"{len(data)} images)",
                                point.robust_accuracy, std=point.robust_accuracy_std if len(point.trials) > 1
                                else None))
    return rows


def _model_rows(run: _Run, key: str, table: str, name: str, model: nn.Module, data: ImageDataset, *,
                noisy: bool, eot: bool = False) -> list[Measurement]:
    """The paper's rows of one model; for a PNI model also "Test without PNI" and (``eot``) advlab's EOT rows.
    A checkpointed scale keeps them, so a resumed run does not evaluate a finished network again."""
    def measure() -> list[Measurement]:
        rows = _paper_rows(run, key, table, name, model, data)
        if noisy:
            with pni_disabled(model):
                rows += _paper_rows(run, f"{key}.no_noise", table, f"{name}, tested without PNI", model, data)
            if eot:
                rows += _eot_rows(run, key, name, model, data)
        return rows

    return run.keep(measured_once(run.ctx, key, model, data, measure))


def _resnet20_tables(run: _Run, train_set: ImageDataset, test_set: ImageDataset, *, table1: bool = True
                     ) -> list[Measurement]:
    s = run.settings
    scratch = s.get("init") != "pretrained"
    eot_locations = set(s.get("eot_locations", s["locations"]))
    out: list[Measurement] = []
    # Table 3's undefended ResNet-20: the pretrained network at reduced scales, else trained on clean images.
    if scratch:
        none = _train(run, "resnet20", "none", None, train_set, adversarial=False, scratch=True)
    else:
        none = run.models["resnet20.none"] = pretrained_resnet20(run.ctx)
    out += _model_rows(run, "resnet20.none", "Table 3", "ResNet-20, no defense", none, test_set, noisy=False)
    vanilla = _train(run, "resnet20", "vanilla", None, train_set)
    out += _model_rows(run, "resnet20.vanilla", "Table 2", "ResNet-20, vanilla adv. training", vanilla, test_set,
                       noisy=False)
    for location in s["locations"]:
        model = _train(run, "resnet20", f"pni_{location}", location, train_set)
        out += _model_rows(run, f"resnet20.pni_{location}", "Table 2", f"ResNet-20, PNI-{location} + adv. training",
                           model, test_set, noisy=True, eot=location in eot_locations)
    schemes = (("pni_W_vanilla_train", "alpha_vanilla", "(i) PNI-W, vanilla (clean) training", False, True),
               ("pni_W_no_pni_gen", "alpha_no_pni_gen", "(ii) PNI-W + adv. training, PNI off in x̂ generation",
                True, False))
    for scheme, prefix, name, adversarial, in_generation in schemes if table1 else ():
        model = _train(run, "resnet20", scheme, "W", train_set, adversarial=adversarial,
                       pni_in_generation=in_generation)
        out += _model_rows(run, f"resnet20.{scheme}", "Table 1", f"ResNet-20, {name}", model, test_set, noisy=True)
        out += _alpha_rows(run, prefix, name, model)
    if "resnet20.pni_W" in run.models:
        out += _alpha_rows(run, "alpha", "(iii) PNI-W + adv. training, PNI on in x̂ generation",
                           run.models["resnet20.pni_W"])
        _plot_alpha_trace(run)
    return out


def _alpha_rows(run: _Run, prefix: str, scheme: str, model: nn.Module) -> list[Measurement]:
    """Table 1 (top): the learned layer-wise α of every PNI layer, keyed ``<prefix>.<parameter name>``."""
    return run.keep([Measurement(f"{prefix}.{name}", "Table 1", f"learned α, {scheme}: {name}", value, "alpha")
                     for name, value in pni_alphas(model).items()])


def _plot_alpha_trace(run: _Run) -> None:
    """Fig. 2: α of the first five PNI-W layers over training, one panel per Table 1 scheme."""
    traces = run.ctx.extras.get("alpha_trace", {})
    schemes = [(k, t) for k, t in (("resnet20.pni_W", "(iii) with PNI in x̂ generation"),
                                   ("resnet20.pni_W_no_pni_gen", "(ii) without PNI in x̂ generation"),
                                   ("resnet20.pni_W_vanilla_train", "(i) vanilla training")) if k in traces]
    figure = new_figure(4.2 * len(schemes), 3.6)
    for index, (key, title) in enumerate(schemes):
        axes = figure.add_subplot(1, len(schemes), index + 1)
        points = traces[key]
        for name in list(points[0]["alpha"])[:FRONT_LAYERS]:
            axes.plot([p["epoch"] for p in points], [p["alpha"][name] for p in points],
                      label=name.replace(".pni_alpha_weight", ""))
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("epoch")
        axes.set_ylabel("α")
        axes.legend(fontsize=7)
    figure.suptitle(f"ResNet-20 PNI-W: α of the first {FRONT_LAYERS} layers during training "
                    f"(scale {run.ctx.scale})", fontsize=10)
    save_figure(run.ctx, figure, "alpha_per_epoch.png")


# --- Table 3 -------------------------------------------------------------------------------------------------------

def _parameter_count(net: str) -> int:
    """Trainable parameters of the plain network (Table 3's "Capacity"; a PNI-W copy adds one α per layer)."""
    arch, width = TABLE3_NETS.get(net, (net, 1.0))
    return count_parameters(create_model(arch, **({"width": width} if width != 1.0 else {})))


def _capacity(run: _Run, net: str, table: str, key: str | None = None) -> Measurement:
    return run.keep([Measurement(key or f"{net}.params", table, f"{net}: trainable parameters (counted)",
                                 float(_parameter_count(net)), "params")])[0]


def _table3(run: _Run, train_set: ImageDataset, test_set: ImageDataset) -> list[Measurement]:
    out = [_capacity(run, "resnet20", "Table 3")]
    for net in run.settings.get("table3_nets", list(TABLE3_NETS)):
        out.append(_capacity(run, net, "Table 3"))
        for scheme, location, adversarial, name in (("none", None, False, "no defense"),
                                                     ("vanilla", None, True, "vanilla adv. training"),
                                                     ("pni_W", "W", True, "PNI-W + adv. training")):
            model = _train(run, net, scheme, location, train_set, adversarial=adversarial, scratch=True)
            out += _model_rows(run, f"{net}.{scheme}", "Table 3", f"{net}, {name}", model, test_set,
                               noisy=location is not None)
    return out


# --- ResNet-18, Tables 4-5 -----------------------------------------------------------------------------------------

def _train_resnet18(run: _Run, train_set: ImageDataset) -> list[Measurement]:
    """ResNet-18 without defense, A (vanilla adv. training) and the B models; Table 4 counts its parameters."""
    out = [_capacity(run, "resnet18", "Table 4")]
    _train(run, "resnet18", "none", None, train_set, adversarial=False, scratch=True)
    _train(run, "resnet18", "vanilla", None, train_set, scratch=True)
    for location in run.settings.get("resnet18_locations", ["W", "A-a", "W+A-a"]):
        _train(run, "resnet18", f"pni_{location}", location, train_set, scratch=True)
    return out


def _table4(run: _Run, test_set: ImageDataset) -> list[Measurement]:
    """C&W-L2 with the paper's settings; the mean L2 over the clean-correct images, a failure counting with the L2
    of its final iterate (002:L62: "a higher value ... indicates a more robust network or potential failure")."""
    s = run.settings
    cw = CarliniWagnerL2.pni(steps=int(s.get("cw_steps", 10)), binary_steps=int(s.get("cw_binary_steps", 9)))
    data = _subset(test_set, s.get("cw_images"), run.protocol.seed)
    out = []
    for net in ("resnet20w4", "resnet18"):
        for scheme in ("none", "vanilla", "pni_W"):
            key = f"{net}.{scheme}"
            if key not in run.models:
                continue
            with seeded(run.protocol.seed, "cw", key):
                attacked = run_attack(run.models[key], data, cw, device=run.ctx.device)
            out += run.keep(_cw_rows(key, attacked, len(data)))
    return out


def _cw_rows(key: str, attacked: Any, n: int) -> list[Measurement]:
    correct, fooled, l2 = attacked.correct, attacked.correct & ~attacked.robust, attacked.norms["l2"].double()
    # With no clean-correct image (a near-chance reduced-scale network) the mean falls back to every image, where
    # an image misclassified already needs (almost) no perturbation.
    if bool(correct.any()):
        pool, over = correct, f"the {int(correct.sum())} clean-correct of {n} images"
    else:
        pool, over = torch.ones_like(correct), f"all {n} images (none is clean-correct)"
    extension = "extension: C&W details"
    return [
        Measurement(f"{key}.cw.mean_l2", "Table 4", f"{key}: mean C&W L2 over {over}; failures count with their "
                    "final L2", float(l2[pool].mean()), "l2"),
        Measurement(f"{key}.cw.success_rate", "§4.2.1 text" if key == "resnet18.pni_W" else extension,
                    f"{key}: C&W success rate on the clean-correct images",
                    float(fooled.sum()) / max(1, int(correct.sum())), "success_rate"),
        Measurement(f"{key}.cw.mean_l2_successful", extension, f"{key}: mean C&W L2 of the successful images",
                    float(l2[fooled].mean()) if bool(fooled.any()) else 0.0, "l2"),
    ]


def _table5(run: _Run, test_set: ImageDataset) -> list[Measurement]:
    """Transferred PGD (paper protocol, crafted on the source without EOT) A⇄B, and ZOO's success rate."""
    s, p = run.settings, run.protocol
    names = ["vanilla", *[f"pni_{loc}" for loc in s.get("resnet18_locations", ["W", "A-a", "W+A-a"])]]
    models = {name: run.models[f"resnet18.{name}"] for name in names}
    data = _subset(test_set, s.get("transfer_images"), p.seed)
    matrix = transfer_matrix(models, data, p.pgd(), device=run.ctx.device, seed=p.seed,
                             trials=int(s.get("transfer_trials", p.trials)))
    run.ctx.extras["transfer_matrix_resnet18"] = matrix.to_dict()
    std = matrix.accuracy_std if matrix.trials > 1 else None
    # Context for every other ResNet-18 row: at reduced scales these networks sit near chance.
    out = [Measurement(f"resnet18.{name}.clean_acc", "extension: clean accuracy of the Table 5 models",
                       f"ResNet-18 {name}: clean accuracy ({matrix.trials} trials, {len(data)} images)",
                       float(matrix.clean_accuracy[i])) for i, name in enumerate(names)]
    for j, name in enumerate(names[1:], start=1):
        for source, target, key in ((0, j, f"resnet18.A_to_{name}.transfer_acc"),
                                    (j, 0, f"resnet18.{name}_to_A.transfer_acc")):
            label = (f"ResNet-18 {names[source]} ⇒ {names[target]}: accuracy under transferred PGD-{p.steps} "
                     f"({matrix.trials} trials, {len(data)} images)")
            out.append(Measurement(key, "Table 5", label, float(matrix.accuracy[source, target]),
                                   std=None if std is None else float(std[source, target])))
    zoo = ZOO(steps=int(s.get("zoo_steps", 1000)), binary_steps=int(s.get("zoo_binary_steps", 1)),
              coordinates=int(s.get("zoo_coordinates", 128)), seed=p.seed)
    zoo_data = _subset(test_set, s.get("zoo_images"), p.seed)
    for name, model in models.items():
        point = run.evaluate(model, zoo_data, zoo, trials=int(s.get("zoo_trials", 1)))
        table = "§4.2.2 text" if name == "vanilla" else "Table 5"
        correct = round(point.clean_accuracy * len(zoo_data), 1)  # 0 clean-correct images: the rate reads 0
        out.append(Measurement(f"resnet18.{name}.zoo.success_rate", table,
                               f"ResNet-18 {name}: ZOO untargeted success rate on the {correct:g} clean-correct of "
                               f"{len(zoo_data)} images ({zoo.steps} iterations)", point.success_rate,
                               "success_rate"))
    return run.keep(out)


# --- advlab's worst case ----------------------------------------------------------------------------------------------

def _worst_case(run: _Run, test_set: ImageDataset) -> list[Measurement]:
    """The question the preset exists for: do vanilla and PNI-W ResNet-20 hold up under advlab's standard cascade
    (APGD-CE, APGD-T on 9 targets, Square 5,000 queries, each on the points still robust) at the paper's ε, with EOT
    gradients and repeated trials for the randomized PNI model? Each evaluation keeps its state under
    ``--out/worst_case/<model>`` (a killed run continues) and its card beside it; a finished one keeps its row
    under ``--out/rows/`` like the paper's rows (:func:`measured_once`), so a later process reuses it."""
    data = _subset(test_set, run.settings.get("worst_case_images"), run.protocol.seed)
    out = []
    for scheme, name in (("vanilla", "vanilla adv. training"), ("pni_W", "PNI-W + adv. training")):
        key = f"resnet20.{scheme}"
        if key in run.models:
            model = run.models[key]
            out += measured_once(run.ctx, f"{key}.worst_case", model, data,
                                 partial(_worst_case_rows, run, scheme, name, model, data))
            if declares_stochastic(model):
                out += measured_once(run.ctx, f"{key}.worst_case_redrawn", model, data,
                                     partial(_redrawn_worst_case_rows, run, scheme, name, model, data))
    return run.keep(out)


def _worst_case_rows(run: _Run, scheme: str, name: str, model: nn.Module, data: ImageDataset
                     ) -> list[Measurement]:
    """One model's worst-case row: robust accuracy after the whole cascade at the paper's ε (mean ± std over
    trials for a randomized model)."""
    from advlab.evaluate.pipeline import evaluate_model

    s, p = run.settings, run.protocol
    suite = str(s.get("worst_case_suite", "standard"))
    card = evaluate_model(model, {"label": f"ResNet-20, {name}"}, data, suite=suite,
                          epsilons=[p.eps], checks=False, trials=int(s.get("worst_case_trials", p.eot_trials)),
                          eot_samples=p.eot_samples,
                          batch_size=int(s.get("worst_case_batch_size", 200)), seed=p.seed,
                          out_dir=run.ctx.out_dir / "worst_case" / scheme,
                          precision=str(s.get("worst_case_precision", "fp32")), device=run.ctx.device)
    assert card.cascade is not None
    trials = int(card.trials.get("count", 1))
    stages = ", ".join(stage["label"] for stage in card.cascade["stages"])
    eot = f", EOT-{card.trials.get('eot_samples')} gradients" if card.trials.get("randomized") else ""
    protocol = f"{len(data)} images, {trials} trial{'s' if trials > 1 else ''}{eot}, {card.data['precision']}"
    return [Measurement(f"resnet20.{scheme}.worst_case_acc", f"extension: worst case of advlab's {suite} suite",
                        f"ResNet-20, {name}: robust after {stages} at ε = {p.eps * 255:g}/255 ({protocol})",
                        float(card.cascade["robust_accuracy"]),
                        std=float(card.cascade["robust_accuracy_std"]) if trials > 1 else None)]


def _redrawn_worst_case_rows(run: _Run, scheme: str, name: str, model: nn.Module, data: ImageDataset
                             ) -> list[Measurement]:
    """How much of a noisy model's worst case the noise draw accounts for.

    The cascade judges a point on one fresh draw per stage and counts it fooled if any stage's draw misclassified
    its adversarial example (as AutoAttack's evaluation loop does); the attacks also stop early on a draw
    that misclassifies. A point near the decision boundary can thus be counted fooled by its draws rather than
    by its perturbation. This reruns the first trial of the worst case (same seeds and attacks, so the same
    verdicts) keeping each point's first adversarial example, and re-judges those examples (the clean image
    where none was found) on ``REDRAWS`` fresh draws: the mean share of correct draws (a single fresh draw's
    expected accuracy) and the share of points more than half of the draws classify correctly, beside the
    single-draw verdict and the share of the points it counts as fooled that most draws still classify correctly."""
    from advlab.evaluate.cascade import cascade_result
    from advlab.evaluate.engine import EvalSettings, Schedule, run_stages
    from advlab.evaluate.suites import SUITE_SCHEDULES, build_suite
    from advlab.precision import resolve_precision

    s, p = run.settings, run.protocol
    suite = str(s.get("worst_case_suite", "standard"))
    precision = resolve_precision(str(s.get("worst_case_precision", "fp32")), run.ctx.device)
    stages = [replace(stage, attack=replace(stage.attack, precision=precision))
              if precision != "fp32" else stage for stage in build_suite(suite, p.eps)]
    settings = EvalSettings(batch_size=int(s.get("worst_case_batch_size", 200)), device=run.ctx.device, trials=1,
                            eot_samples=p.eot_samples, randomized=True, seed=p.seed)
    records = run_stages(model, data, [stages], [p.eps], schedule=SUITE_SCHEDULES.get(suite, Schedule.EACH),
                         settings=settings, keep_adversarial=True, kind="worst case, redrawn",
                         state_path=run.ctx.out_dir / "worst_case" / f"{scheme}_redrawn" / "state" / "attacks.json")
    result = cascade_result(records, 0)
    assert result.adv is not None
    share = draw_accuracy(model, result.adv, data.labels, REDRAWS, seed=p.seed)
    majority = share > 0.5
    fooled = result.fooled_by >= 0
    what = (f"ResNet-20, {name}: the first worst-case trial ({len(data)} images, EOT-{p.eot_samples} "
            f"gradients, {precision})")
    return [
        Measurement(f"resnet20.{scheme}.worst_case_trial0_acc", "extension: worst case, noise draws",
                    f"{what}, each point judged on one draw per stage (the worst-case row's rule)",
                    result.robust_accuracy),
        Measurement(f"resnet20.{scheme}.worst_case_redrawn_expected_acc", "extension: worst case, noise draws",
                    f"{what}, its examples re-judged: mean share of {REDRAWS} fresh draws classifying correctly",
                    float(share.mean())),
        Measurement(f"resnet20.{scheme}.worst_case_redrawn_majority_acc", "extension: worst case, noise draws",
                    f"{what}, its examples re-judged: share of points more than half of {REDRAWS} fresh draws "
                    "classify correctly", float(majority.double().mean())),
        Measurement(f"resnet20.{scheme}.worst_case_fooled_by_draw", "extension: worst case, noise draws",
                    f"{what}: of the {int(fooled.sum())} points counted as fooled, the share more than half of "
                    f"{REDRAWS} fresh draws still classify correctly at their example",
                    float(majority[fooled].double().mean()) if fooled.any() else 0.0, "share"),
    ]


# --- Fig. 3 --------------------------------------------------------------------------------------------------------

def _fig3(run: _Run, test_set: ImageDataset) -> list[Measurement]:
    """PGD accuracy against ε (N_step fixed, step ε/4) and against N_step (ε fixed), vanilla vs PNI-W."""
    s, p = run.settings, run.protocol
    net = str(s.get("fig3_model", "resnet18"))
    data = _subset(test_set, s.get("fig3_images"), p.seed)
    trials = int(s.get("fig3_trials", p.trials))
    epsilons = [float(e) for e in s["fig3_eps"]]
    step_counts = [int(n) for n in s["fig3_steps"]]
    curves: dict[str, dict[str, list[float]]] = {}
    largest: dict[str, Any] = {}  # each scheme's point at the largest ε (the sweep lists it last)
    out: list[Measurement] = []
    for scheme in ("vanilla", "pni_W"):
        model = run.models[f"{net}.{scheme}"]
        by_eps = [run.evaluate(model, data, p.pgd(eps=e, step_size=e / 4), trials=trials) for e in epsilons]
        by_steps = [run.evaluate(model, data, p.pgd(steps=n), trials=trials) for n in step_counts]
        curves[scheme] = {"eps": [r.robust_accuracy for r in by_eps], "steps": [r.robust_accuracy for r in by_steps]}
        largest[scheme] = by_eps[-1]
        for e, r in zip(epsilons, by_eps):
            out.append(_sweep_row(f"fig3.{net}.{scheme}.eps{e * 255:g}.pgd_acc",
                                  f"{net} {scheme}: PGD-{p.steps} at ε = {e * 255:g}/255 (step ε/4)", r, len(data)))
        for n, r in zip(step_counts, by_steps):
            out.append(_sweep_row(f"fig3.{net}.{scheme}.steps{n}.pgd_acc",
                                  f"{net} {scheme}: PGD with N_step = {n} at ε = {p.eps * 255:g}/255", r, len(data)))
    # §5: "the unbounded attacks do lead to 0% accuracy": PNI-W at the largest ε of the sweep.
    out.append(_sweep_row("fig3.pni_W.pgd_acc_largest_eps", f"{net} PNI-W: PGD-{p.steps} at the largest ε of "
                          f"Fig. 3 ({epsilons[-1] * 255:g}/255, step ε/4)", largest["pni_W"], len(data),
                          table="§5 text"))
    _plot_fig3(run, net, epsilons, step_counts, curves)
    run.ctx.extras["fig3"] = {"model": net, "eps": epsilons, "steps": step_counts, "curves": curves}
    return run.keep(out)


def _sweep_row(key: str, label: str, point: Any, n: int, table: str = "Fig. 3") -> Measurement:
    trials = len(point.trials)
    return Measurement(key, table, f"{label}, {trials} trial{'s' if trials > 1 else ''}, {n} images",
                       point.robust_accuracy, std=point.robust_accuracy_std if trials > 1 else None)


def _plot_fig3(run: _Run, net: str, epsilons: Sequence[float], steps: Sequence[int],
               curves: dict[str, dict[str, list[float]]]) -> None:
    figure = new_figure(5.0, 6.4)
    top, bottom = figure.add_subplot(2, 1, 1), figure.add_subplot(2, 1, 2)
    for scheme, label in (("vanilla", "vanilla adv. training"), ("pni_W", "PNI-W")):
        top.plot([e * 255 for e in epsilons], curves[scheme]["eps"], marker="o", label=label)
        bottom.plot(list(steps), curves[scheme]["steps"], marker="o", label=label)
    top.set_xlabel("ε (×1/255)")
    bottom.set_xlabel("N_step")
    for axes in (top, bottom):
        axes.set_ylabel("PGD accuracy")
        axes.legend(fontsize=8)
    figure.suptitle(f"Fig. 3 ({net}, scale {run.ctx.scale})", fontsize=10)
    save_figure(run.ctx, figure, "fig3_pgd_sweeps.png")


# --- Table 6 and the text's numbers: the same measurements under the keys of those cells -------------------------

@dataclass(frozen=True)
class _Alias:
    """A paper cell whose number is another key's measurement (``source``), or a difference of two (``minus``)."""

    key: str
    source: str
    table: str
    label: str
    unit: str = "accuracy"
    minus: str | None = None  # a difference: source − minus


def _aliases() -> list[_Alias]:
    """Keys of paper cells that repeat a measurement: Table 6, Table 1 (iii), Table 3's Net20, the text's numbers."""
    gains = []
    for table, prefix in (("Abstract", "abstract"), ("§1 text", "intro")):
        for metric in ("clean", "pgd"):
            gains.append(_Alias(f"{prefix}.resnet20.pni_W_minus_vanilla.{metric}_gain", f"resnet20.pni_W.{metric}_acc",
                                table, f"ResNet-20: PNI-W − vanilla adv. training, {metric} accuracy",
                                "accuracy_gain", minus=f"resnet20.vanilla.{metric}_acc"))
    copies = [_Alias(f"table1.pni_W.{m}_acc", f"resnet20.pni_W.{m}_acc", "Table 1",
                     f"(iii) PNI-W + adv. training with PNI in x̂ generation: {m} accuracy")
              for m in ("clean", "pgd", "fgsm")]
    for scheme in ("vanilla", "pni_W", "pni_W.no_noise"):
        copies += [_Alias(f"table3.resnet20.{scheme}.{m}_acc", f"resnet20.{scheme}.{m}_acc", "Table 3",
                          f"Net20 {scheme}: {m} accuracy") for m in ("clean", "pgd", "fgsm")]
    copies += [_Alias("table4.resnet20w4.params", "resnet20w4.params", "Table 4", "ResNet-20 (4×): parameters",
                      "params"),
               _Alias("text.alpha_no_pni_gen.layer1.1.conv2", "alpha_no_pni_gen.layer1.1.conv2.pni_alpha_weight",
                      "§4.2.1 text", "α of Conv1.3 without PNI in x̂ generation", "alpha")]
    for scheme, row in (("vanilla", "PGD adv. train"), ("pni_W", "PNI-W")):
        copies += [_Alias(f"table6.resnet20w4.{scheme}.{m}_acc", f"resnet20w4.{scheme}.{m}_acc", "Table 6",
                          f"{row}, ResNet-20 (4×): {m} accuracy") for m in ("clean", "pgd")]
    return gains + copies


def _table6_and_text(run: _Run) -> list[Measurement]:
    """Every :func:`_aliases` entry whose source was measured, as a copy or a difference under its own key."""
    out = []
    for alias in _aliases():
        source = run.values.get(alias.source)
        if source is None:
            continue
        if alias.minus is not None:
            other = run.values[alias.minus]
            out.append(Measurement(alias.key, alias.table, f"{alias.label} ({alias.source} − {alias.minus})",
                                   source.value - other.value, alias.unit))
        else:
            out.append(Measurement(alias.key, alias.table, f"{alias.label} (= {alias.source})", source.value,
                                   alias.unit, std=source.std))
    return out

