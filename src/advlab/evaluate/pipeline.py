"""``advlab evaluate`` as one library call: curves, cascade, checks, analyses -> ``card.json``.

:func:`evaluate_model` runs, on one model and one dataset:

1. **every attack at every ε in one run** of :func:`~advlab.evaluate.engine.run_stages`, each ε with the suite's
   ε-relative settings (PGD's step ε/4 is ε/4 of *that* ε), the radii in ascending order so that a point fooled
   at a smaller ε is never attacked again. The quick and papers suites give every attack its own curve; the
   standard suite runs AutoAttack's cascade (each attack only on the points every earlier one left robust);
2. from the same per-sample flags, the **worst case** at every ε: robust only if no attack fooled the point at that
   ε or a smaller one, so it is never above a single attack's curve (``card.cascade``, stages at the largest ε);
3. the **sanity checks** of :func:`~advlab.evaluate.checks.run_checks` at the largest ε, on a small subset;
4. the requested **analyses** (registered units of :mod:`advlab.evaluate.analyses`) on a small subset, stored in
   ``card.analyses`` as payloads with a ``"kind"`` (:mod:`advlab.evaluate.payloads`);
5. ``out_dir/card.json`` (atomic). The report is drawn from cards by :func:`advlab.report.build_report`, which
   the caller runs (the CLI does), so this layer never imports the one above it.

Randomized models are detected once (two forward passes, or a ``stochastic = True`` declaration) and every step
then uses EOT gradients and repeated trials (mean ± std), as the evaluation library does.

**Resumable and crash-safe.** Every step has its own state file under ``out_dir/state/``
(:class:`~advlab.evaluate.state.EvaluationState`): the attacks record each finished batch, every other step its
finished result (:class:`StepCache`). All writes are atomic and every batch/step is seeded from the
evaluation seed and its own coordinates, so killing the process at any moment and rerunning the same call
continues where it stopped and returns the same numbers as an uninterrupted run. A changed configuration (other
weights, data, attacks, ε, seed, ...) does not match the stored keys and recomputes.

Card layout: ``card.results`` holds the *headline* curve (the attack with the lowest mean robust accuracy over
the ε list, or a cascade's worst case; ``card.attacks[0]`` describes it); the other curves are in
``card.analyses`` under ``"curve: <label>"`` as ``kind = "curve"`` payloads (each ε's full numbers under
``"points"``), which the report draws one plot per attack.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.data.dataset import ImageDataset
from advlab.errors import InputError, UnknownNameError
from advlab.evaluate.analyses import ANALYSES, AnalysisContext, analysis_names, parse_analyses
from advlab.evaluate.card import EvaluationCard, build_card, save_card
from advlab.evaluate.cascade import cascade_result
from advlab.evaluate.checks import run_checks
from advlab.evaluate.describe import describe_attack, to_jsonable
from advlab.evaluate.engine import EvalSettings, Records, Schedule, Stage, run_stages
from advlab.evaluate.inputs import (
    as_eval_data,
    check_batch_size,
    model_device,
    model_fingerprint,
)
from advlab.evaluate.payloads import curve_payload
from advlab.evaluate.progress import ProgressLike
from advlab.evaluate.randomness import DEFAULT_EOT_SAMPLES, DEFAULT_TRIALS, detect_randomized, mean_std, with_eot
from advlab.evaluate.robustness import EpsilonResult, RobustnessCurve, check_epsilons, evaluate_attack
from advlab.evaluate.state import EvaluationState
from advlab.evaluate.suites import SUITE_SCHEDULES, SUITES, build_attack
from advlab.folder_lock import exclusive_folder
from advlab.precision import resolve_precision


@dataclass(frozen=True)
class AttackPlan:
    """One attack of the evaluation: its table label, how to build it for a given ε, and its description."""

    label: str
    build: Callable[[float], Attack]
    eps_relative: dict[str, float]
    target_classes: int = 0


class StepCache:
    """Finished results of whole evaluation steps (checks, analyses): a one-record evaluation state file each.

    A step's file under ``folder`` is an :class:`~advlab.evaluate.state.EvaluationState` keyed by ``base`` (model
    weights, data, seed, ...) plus the step's own configuration; a file with another key is recomputed.
    """

    def __init__(self, folder: Path, base: dict[str, Any]) -> None:
        self.folder = folder
        self.base = to_jsonable(base)
        self.reused: list[str] = []

    def run(self, name: str, config: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """The stored result of step ``name`` when its key matches, else ``compute()`` stored as JSON."""
        state = EvaluationState(self.folder / f"{_slug(name)}.json", {"base": self.base, "step": name,
                                                                      "config": config})
        stored = state.get("result")
        if stored is not None:
            self.reused.append(name)
            return stored["value"]
        result = to_jsonable(compute())
        state.put("result", {"value": result})
        return result


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "step"


def _suite_plans(suite: str, norm: Norm) -> list[AttackPlan]:
    if suite not in SUITES:
        raise UnknownNameError(f"unknown suite {suite!r}. Known: {', '.join(sorted(SUITES))}.")
    plans = []
    for spec in SUITES[suite]:
        if spec.names.get(norm.value) is None:
            continue

        def build(eps: float, spec=spec) -> Attack:  # bind the loop variable
            stage = build_attack(spec, eps, norm)
            assert stage is not None
            return stage.attack

        plans.append(AttackPlan(spec.label, build, dict(spec.eps_relative), spec.target_classes))
    return plans


def _extra_plans(names: Sequence[str], norm: Norm) -> tuple[list[AttackPlan], list[tuple[str, Attack]]]:
    """Extra registered attacks: ε-bounded ones join the curves and the cascade, the others run once."""
    import advlab.attacks  # noqa: F401 - registers every attack
    from advlab.attacks.registry import ATTACKS

    bounded, unbounded = [], []
    for name in names:
        factory = ATTACKS.entry(name).factory  # UnknownNameError with "did you mean" for a typo
        has_eps = isinstance(factory, type) and issubclass(factory, Attack) and factory.is_bounded()

        def build(eps: float | None, name: str = name) -> Attack:
            try:
                return ATTACKS.create(name, **({} if eps is None else {"eps": eps}))
            except TypeError as exc:
                raise InputError(f"attack {name!r} cannot be built from its defaults ({exc}); run it with "
                                 "`advlab attack --attack-arg ...` instead") from None

        attack = build(None) if not has_eps else build(1.0)  # built once now so a bad name fails before any work
        if has_eps:
            if attack.norm is not norm:
                raise InputError(f"attack {name!r} is an {attack.norm.value} attack but the evaluation norm is "
                                 f"{norm.value}; pass --norm {attack.norm.value} or another attack")
            bounded.append(AttackPlan(name, build, {}))
        else:
            unbounded.append((name, attack))
    return bounded, unbounded


def _curve_payload(label: str, attack: dict[str, Any], points: list[dict[str, Any]], clean: float,
                   norm: Norm) -> dict[str, Any]:
    """A report ``curve`` payload for one attack, starting at ε = 0 (the clean accuracy)."""
    from advlab.formatting import norm_name

    xs = [p["eps"] for p in points]
    ys = [p["robust_accuracy"] for p in points]
    stds = [p["robust_accuracy_std"] for p in points]
    if xs[0] > 0:
        xs, ys, stds = [0.0] + xs, [clean] + ys, [0.0] + stds
    return curve_payload(xs, ys, y_std=stds, x_label=f"{label} ε ({norm_name(norm.value)})",
                         y_label="robust accuracy", title=f"Robust accuracy vs ε: {label} ({norm_name(norm.value)})"
                         ) | {"attack": attack, "points": points}


def evaluate_model(
    model: nn.Module,
    card_of_model: dict[str, Any],
    dataset: ImageDataset,
    *,
    suite: str = "quick",
    epsilons: Sequence[float],
    norm: str = "linf",
    attacks: Sequence[str] | None = None,
    analyses: Collection[str] = (),
    checks: bool = True,
    trials: int | None = None,
    eot: bool = True,
    eot_samples: int = DEFAULT_EOT_SAMPLES,
    batch_size: int = 256,
    seed: int = 0,
    out_dir: str | Path,
    progress: ProgressLike = None,
    analysis_points: int = 200,
    grid_per_class: int = 10,
    check_points: int = 200,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
) -> EvaluationCard:
    """Evaluate ``model`` on ``dataset``; write ``out_dir/card.json``; return the card.

    Args:
        model: [0, 1] images (N, C, H, W) -> logits; left in the mode it came in.
        card_of_model: what is known about the model (its checkpoint card; ``label`` names it in the report).
        dataset: the evaluation points (uint8); every attack runs on all of them.
        suite: ``"quick"`` (FGSM, PGD-20), ``"standard"`` (APGD-CE, APGD-T, Square) or ``"papers"``.
        epsilons: radii in [0, 1] pixel units, e.g. ``[0.1, 0.2, 0.3]`` (MNIST) or ``[2/255, 8/255]``.
        norm: ``"linf"`` or ``"l2"``; suite attacks without that norm are left out.
        attacks: extra registry names: ε-bounded ones join the curves and the cascade, unbounded ones (cw,
            deepfool, zoo, ...) run once with their defaults and appear as single-attack analyses.
        analyses: names of registered analyses (:mod:`advlab.evaluate.analyses`, e.g. ``statistics``, ``grid``,
            ``gradients``, ``examples``, ``noise``, ``steps``); they run on ``analysis_points`` points (the grid on
            ``grid_per_class`` points per class).
        checks: run the sanity checks at the largest ε on ``check_points`` points.
        trials / eot / eot_samples: for a randomized model, repetitions (default 5, mean ± std) and EOT gradients
            (default on, 10 gradient samples per step).
        batch_size, seed: every batch is seeded from ``seed`` and its coordinates (reruns repeat exactly).
        out_dir: ``card.json`` and the resumable ``state/`` folder go here.
        progress: None, a callback ``(done, total, description)`` or a rich Progress (one task per step).
        device: where to run (default: the model's device).
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` for the attacks' forward and backward passes (projection,
            clean and final passes stay fp32; :mod:`advlab.precision`); the card records what ran.
        channels_last: feed the attacks' passes NHWC images (faster for 3-channel conv nets, above all in bf16;
            a model that ``.view()``s conv outputs refuses them).
        compile: run the attacks' passes through ``torch.compile`` (compiled once for the whole evaluation; it
            repays only long runs: :func:`advlab.attacks.compile_estimate.estimate_compile` measures where).

    Raises:
        InputError / UnknownNameError for bad settings (before any work is done).
    """
    started = time.perf_counter()
    eps_list = check_epsilons(epsilons)
    eps_max = max(eps_list)
    try:
        norm_value = Norm(norm)
    except ValueError:
        raise InputError(f"unknown norm {norm!r}; use one of {', '.join(n.value for n in Norm)}") from None
    wanted = parse_analyses(sorted(analyses)) if analyses else set()
    check_batch_size(batch_size)
    for name, value in (("analysis_points", analysis_points), ("grid_per_class", grid_per_class),
                        ("check_points", check_points)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if trials is not None and (not isinstance(trials, int) or trials < 1):
        raise InputError(f"trials must be a positive integer, got {trials!r}")
    if not isinstance(dataset, ImageDataset) or len(dataset) == 0:
        raise InputError("evaluate_model needs a non-empty ImageDataset (see advlab.data.sources.load_dataset)")

    plans = _suite_plans(suite, norm_value)
    extra_bounded, extra_unbounded = _extra_plans(list(dict.fromkeys(attacks or ())), norm_value)
    plans += extra_bounded
    resolved_precision = resolve_precision(precision, model_device(model, device))
    fast: dict[str, Any] = {"precision": resolved_precision} if resolved_precision != "fp32" else {}
    fast |= {"channels_last": True} if channels_last else {}
    fast |= {"compile": True} if compile else {}
    if fast:
        plans = [dataclasses.replace(plan, build=_with_settings(plan.build, fast)) for plan in plans]
    if not plans:
        raise InputError(f"the {suite!r} suite has no {norm_value.value} attack; pass --attack NAME or another norm")

    out = Path(out_dir)
    # One writer per folder: a second evaluation into the same --out would read this one's state files.
    with exclusive_folder(out, "evaluation"):
        state_dir = out / "state"
        device = model_device(model, device)
        data = as_eval_data(dataset)
        randomized = detect_randomized(model, data, device, seed)
        n_trials = (trials or DEFAULT_TRIALS) if randomized else 1
        settings = EvalSettings(batch_size=batch_size, device=device, trials=trials, eot=eot,
                                eot_samples=eot_samples, randomized=randomized, seed=seed, progress=progress)
        owner = {"model_weights": model_fingerprint(model),
                 "data": {"name": data.name, "n": len(data), "sha256": data.fingerprint()}}
        cache = StepCache(state_dir, {"model_card": card_of_model, **owner,
                                      "seed": seed, "randomized": randomized, "trials": n_trials, "eot": eot,
                                      "eot_samples": eot_samples, "batch_size": batch_size})

        def honest(attack: Attack) -> Attack:
            """The attack with EOT gradients when the model is randomized (and EOT is on)."""
            return with_eot(attack, eot_samples) if randomized and eot else attack

        # 1-2. Every attack at every ε in one run of the engine: curves, and the worst case as the AND of all flags.
        schedule = SUITE_SCHEDULES.get(suite, Schedule.EACH)
        records = run_stages(
            model, data, [[Stage(plan.label, plan.build(eps), plan.target_classes) for plan in plans]
                          for eps in eps_list], eps_list, schedule=schedule,
            settings=settings, state_path=state_dir / "attacks.json", model_card=card_of_model,
            kind=f"evaluate:{schedule.value}")
        curves = _curves(records, plans, eps_list, cumulative=schedule is Schedule.CASCADE)
        # Headline: the strongest curve over the whole ε range (lowest mean robust accuracy; ties -> later one).
        headline_index = min(range(len(curves)), key=lambda i: (
            sum(p["robust_accuracy"] for p in curves[i][1]) / len(eps_list), -i))
        head_label, head_points, head_description = curves[headline_index]
        head_plan = plans[headline_index] if schedule is Schedule.EACH else plans[0]
        clean = head_points[0]["clean_accuracy"]
        e_max = eps_list.index(eps_max)
        cascade_summary = cascade_result(records, e_max).to_dict() | {
            "schedule": schedule.value, "worst_case": _worst_case_rows(records, eps_list)}

        # 3. Sanity checks at the largest ε.
        check_results = _sanity_checks(model, dataset.subset(check_points, seed=seed), cache, settings, eps_max,
                                       norm_value) if checks else []

        # 4. Analyses on small subsets.
        summaries: dict[str, Any] = {}
        for label, points, description in curves:
            if label != head_label:
                summaries[f"curve: {label}"] = _curve_payload(label, description, points, clean, norm_value)
        for name, attack in extra_unbounded:
            summaries[name] = evaluate_attack(
                model, data, honest(attack), state_path=state_dir / f"single-{_slug(name)}.json",
                model_card=card_of_model, **{f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
            ).to_dict() | {"kind": "single_attack"}
        if wanted:
            subset = dataset.subset(analysis_points, seed=seed)
            context = AnalysisContext(
                model=model, dataset=dataset, x=subset.float_images().to(device), y=subset.labels.to(device),
                classes=list(dataset.classes), epsilons=eps_list, norm=norm_value,
                headline=lambda eps: honest(head_plan.build(eps)), honest=honest, state_dir=state_dir,
                settings=settings, grid_per_class=grid_per_class)
            for name in analysis_names():
                if name in wanted:
                    unit = ANALYSES.create(name)
                    summaries.update(cache.run(name, unit.config(context), functools.partial(unit.compute, context)))

        # 5. The card.
        curve = RobustnessCurve(attack=head_description, points=(), randomized=records.randomized,
                                eot_samples=records.eot_samples, trials=records.trials, n=len(data),
                                data_name=data.name)
        card = build_card(
            model_card=card_of_model,
            data={"name": dataset.name, "n": len(dataset), "seed": seed, "classes": list(dataset.classes),
                  "suite": suite, "norm": norm_value.value, "epsilons": eps_list,
                  "precision": resolved_precision, "channels_last": channels_last, "compile": compile},
            curve=curve, analyses=summaries, seed=seed, duration_s=time.perf_counter() - started)
        card.attacks = to_jsonable([head_description, *(stage["attack"] for stage in cascade_summary["stages"])])
        card.results = to_jsonable(head_points)
        card.checks = to_jsonable(check_results)
        card.cascade = to_jsonable(cascade_summary)
        save_card(out / "card.json", card)
        return card


def _sanity_checks(model: nn.Module, points: ImageDataset, cache: StepCache, settings: EvalSettings, eps: float,
                   norm: Norm) -> list[dict[str, Any]]:
    """:func:`~advlab.evaluate.checks.run_checks` at ``eps`` on ``points`` (a cached step), with EOT attacks for a
    randomized model."""
    from advlab.evaluate.checks import default_check_attacks

    device = torch.device(settings.device) if settings.device is not None else None
    x, y = points.float_images().to(device), points.labels.to(device)
    overrides: dict[str, Attack | None] = {}
    if settings.randomized and settings.eot:
        overrides = {name: (with_eot(attack, settings.eot_samples) if attack is not None and name != "black_box"
                            else attack)
                     for name, attack in default_check_attacks(eps, norm).items()}
    config = {"eps": eps, "norm": norm.value, "points": len(points),
              "attacks": {name: describe_attack(attack) for name, attack in overrides.items() if attack is not None}}
    return cache.run("checks", config, lambda: [check.to_dict() for check in run_checks(
        model, x, y, eps, norm=norm, attacks=overrides or None, max_points=len(points), seed=settings.seed,
        batch_size=settings.batch_size)])


def _with_settings(build: Callable[[float], Attack], settings: dict[str, Any]) -> Callable[[float], Attack]:
    """``build`` whose attacks get ``settings`` (precision, channels_last: how they run, not what they do)."""
    def built(eps: float) -> Attack:
        return dataclasses.replace(build(eps), **settings)

    return built


def _worst_case_rows(records: Records, eps_list: list[float]) -> list[dict[str, float]]:
    """Per ε, the share of points no attack fooled at that ε or a smaller one (mean and std over trials)."""
    worst = records.worst_case()  # (T, E, N)
    rows = []
    for e, eps in enumerate(eps_list):
        mean, std = mean_std([float(trial.double().mean()) for trial in worst[:, e]])
        rows.append({"eps": eps, "robust_accuracy": mean, "robust_accuracy_std": std})
    return rows


def _curves(records: Records, plans: Sequence[AttackPlan], eps_list: list[float], *, cumulative: bool
            ) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """``(label, rows per ε, description)`` per curve: each attack's own (EACH schedule), or, for a cascade, the
    worst case after the first 1, 2, ... attacks at each ε, with every point fooled at a smaller ε counted as
    fooled (a cascade's later attacks never saw every point, so they have no curve of their own)."""
    e_max = eps_list.index(max(eps_list))
    curves = []
    for s, plan in enumerate(plans):
        label = ", ".join(p.label for p in plans[: s + 1]) if cumulative else plan.label
        rows = [EpsilonResult(eps, records.metrics(e, s, cumulative=cumulative)).to_dict()
                for e, eps in enumerate(eps_list)]
        description = describe_attack(records.stages[e_max][s].attack, label) | {
            "eps_relative": plan.eps_relative, "epsilons": eps_list}
        if cumulative:
            description |= {"cascade": [p.label for p in plans[: s + 1]]}
        curves.append((label, rows, description))
    return curves


# --- the console summary the CLI prints ------------------------------------------------------------------------
