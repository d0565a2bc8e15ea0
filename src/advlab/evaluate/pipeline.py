"""``advlab evaluate`` as one library call: curves, cascade, checks, analyses -> ``card.json``.

:func:`evaluate_model` runs, on one model and one dataset:

1. the **robust accuracy curve** over the ε list of every attack of the suite (plus any extra registered
   attacks), each ε with the suite's ε-relative settings (PGD's step ε/4 is ε/4 of *that* ε);
2. the **worst-case cascade** of all those attacks at the largest ε (AutoAttack style: each attack only on the
   points still robust), extended by any point the curves' own runs at that ε fooled (:func:`fold_in_curve_runs`),
   so the worst case is never above a single attack's curve;
3. the **sanity checks** of :func:`~advlab.evaluate.checks.run_checks` at the largest ε, on a small subset;
4. the requested **analyses** on a small subset, stored in ``card.analyses`` in the report's payload formats
   (:mod:`advlab.evaluate.payloads`);
5. ``out_dir/card.json`` (atomic). The report is drawn from cards by :func:`advlab.report.build_report`, which
   the caller runs (the CLI does), so this layer never imports the one above it.

Randomized models are detected once (two forward passes, or a ``stochastic = True`` declaration) and every step
then uses EOT gradients and repeated trials (mean ± std), as the evaluation library does.

**Resumable and crash-safe.** Every step has its own state file under ``out_dir/state/``: the curves and the
cascade record each finished batch (:class:`~advlab.evaluate.state.EvaluationState`), every other step writes its
finished result once (:class:`StepCache`). All writes are atomic and every batch/step is seeded from the
evaluation seed and its own coordinates, so killing the process at any moment and rerunning the same call
continues where it stopped and returns the same numbers as an uninterrupted run. A changed configuration (other
weights, data, attacks, ε, seed, ...) does not match the stored keys and recomputes.

Card layout: ``card.results`` holds the *headline* curve (the attack with the lowest mean robust accuracy over
the ε list; ``card.attacks[0]`` describes it); the other attacks' curves are in ``card.analyses`` under
``"curve: <label>"`` as ``kind = "curve"`` payloads (each ε's full numbers under ``"points"``), which the report
draws one plot per attack.
"""

from __future__ import annotations

import json
import math
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
from advlab.errors import AdvlabError, InputError, UnknownNameError
from advlab.evaluate.card import EvaluationCard, build_card, save_card
from advlab.evaluate.cascade import CascadeStage, run_cascade
from advlab.evaluate.checks import run_checks
from advlab.evaluate.describe import describe_attack, to_jsonable
from advlab.evaluate.gradient_norms import input_gradient_norms
from advlab.evaluate.inputs import (
    as_eval_data,
    check_batch_size,
    model_device,
    model_fingerprint,
)
from advlab.evaluate.progress import ProgressLike
from advlab.evaluate.randomness import DEFAULT_TRIALS, seeded, with_eot
from advlab.evaluate.robustness import (
    RobustnessCurve,
    detect_randomized,
    evaluate_attack,
)
from advlab.evaluate.runner import run_attack
from advlab.evaluate.state import config_hash
from advlab.evaluate.statistics import (
    average_adversarial_grid,
    average_perturbation_images,
    pixel_histograms,
)
from advlab.evaluate.suites import SUITES, build_attack
from advlab.evaluate.sweeps import accuracy_vs_noise, accuracy_vs_steps
from advlab.folder_lock import exclusive_folder
from advlab.io import write_json

ANALYSES = ("statistics", "grid", "gradients", "examples", "noise", "steps")
STEP_FORMAT = "advlab-pipeline-step"
#: Gaussian-noise stds of the "noise" analysis, [0, 1] pixel units.
NOISE_STDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
NOISE_DRAWS = 3
#: Attack steps of the "steps" analysis (PGD at the largest ε with a fixed step of ε/4).
STEP_COUNTS = (1, 2, 5, 10, 20, 50)
#: The targeted attack of the "grid" analysis: PGD, GRID_STEPS steps of ε/4 at the largest ε.
GRID_STEPS = 20
EXAMPLE_COUNT = 8


@dataclass(frozen=True)
class AttackPlan:
    """One attack of the evaluation: its table label, how to build it for a given ε, and its description."""

    label: str
    build: Callable[[float], Attack]
    eps_relative: dict[str, float]
    target_classes: int = 0


class StepCache:
    """Finished results of whole evaluation steps, one JSON file each under ``folder`` (written atomically).

    A step's file is keyed by the sha256 of ``base`` (model weights, data, seed, ...) plus the step's own
    configuration; a file with another key is recomputed and overwritten.
    """

    def __init__(self, folder: Path, base: dict[str, Any]) -> None:
        self.folder = folder
        self.base = to_jsonable(base)
        self.reused: list[str] = []

    def path(self, name: str) -> Path:
        return self.folder / f"{_slug(name)}.json"

    def run(self, name: str, config: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """The stored result of step ``name`` when its key matches, else ``compute()`` stored as JSON."""
        path = self.path(name)
        key = config_hash({"base": self.base, "step": name, "config": config})
        if path.exists():
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise AdvlabError(f"evaluation step file {path} is unreadable ({exc}); delete it (or the whole "
                                  f"{self.folder} folder) to recompute that step") from exc
            if not isinstance(stored, dict) or stored.get("format") != STEP_FORMAT:
                raise AdvlabError(f"{path} is not an advlab evaluation step file; use another --out folder "
                                  "(advlab will not overwrite a file it did not write)")
            if stored.get("key") == key:
                self.reused.append(name)
                return stored["result"]
        result = to_jsonable(compute())
        write_json(path, {"format": STEP_FORMAT, "key": key, "step": name, "result": result})
        return result


def parse_analyses(values: Sequence[str]) -> set[str]:
    """CLI helper: ``["statistics,grid", "examples"]`` or ``["all"]`` -> a set of :data:`ANALYSES` names."""
    names = {part.strip() for value in values for part in value.split(",") if part.strip()}
    if "all" in names:
        return set(ANALYSES)
    unknown = names - set(ANALYSES)
    if unknown:
        raise InputError(f"unknown analyses {', '.join(sorted(unknown))}; choose from {', '.join(ANALYSES)} or all")
    return names


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "step"


def _check_epsilons(epsilons: Sequence[float]) -> list[float]:
    if isinstance(epsilons, (str, bytes)) or not isinstance(epsilons, Sequence) or not epsilons:
        raise InputError("pass at least one epsilon, e.g. --eps 0.1,0.2,0.3 (MNIST) or --eps 2/255,8/255 (CIFAR-10)")
    for eps in epsilons:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or math.isnan(eps) or eps < 0:
            raise InputError(f"every epsilon must be a number >= 0 in [0, 1] pixel units, got {eps!r}")
    return [float(eps) for eps in epsilons]


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


def _grid_subset(dataset: ImageDataset, per_class: int, seed: int) -> ImageDataset:
    """``per_class`` points of each class, drawn with a fixed seed (fewer where a class has fewer)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    labels = dataset.labels[order]
    chosen = torch.cat([order[labels == label][:per_class] for label in range(dataset.num_classes)])
    return dataset.select(chosen.sort().values, f"{dataset.name}[{per_class}/class]")


def _curve_payload(label: str, attack: dict[str, Any], points: list[dict[str, Any]], clean: float,
                   norm: Norm) -> dict[str, Any]:
    """A report ``curve`` payload for one attack, starting at ε = 0 (the clean accuracy)."""
    from advlab.formatting import norm_name

    xs = [p["eps"] for p in points]
    ys = [p["robust_accuracy"] for p in points]
    stds = [p["robust_accuracy_std"] for p in points]
    if xs[0] > 0:
        xs, ys, stds = [0.0] + xs, [clean] + ys, [0.0] + stds
    return {"kind": "curve", "x": xs, "y": ys, "y_std": stds, "x_label": f"{label} ε ({norm_name(norm.value)})",
            "y_label": "robust accuracy", "title": f"Robust accuracy vs ε: {label} ({norm_name(norm.value)})",
            "log_x": False, "attack": attack, "points": points}


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
    batch_size: int = 256,
    seed: int = 0,
    out_dir: str | Path,
    progress: ProgressLike = None,
    analysis_points: int = 200,
    grid_per_class: int = 10,
    check_points: int = 200,
    device: torch.device | str | None = None,
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
        analyses: any of :data:`ANALYSES`: ``statistics`` (perturbation norms, pixel histograms, mean perturbation
            per class), ``grid`` (targeted average adversarial images), ``gradients`` (input-gradient norms),
            ``examples`` (images at every ε), ``noise`` (accuracy vs Gaussian noise), ``steps`` (accuracy vs PGD
            steps); they run on ``analysis_points`` points (the grid on ``grid_per_class`` points per class).
        checks: run the sanity checks at the largest ε on ``check_points`` points.
        trials / eot: for a randomized model, repetitions (default 5, mean ± std) and EOT gradients (default on).
        batch_size, seed: every batch is seeded from ``seed`` and its coordinates (reruns repeat exactly).
        out_dir: ``card.json`` and the resumable ``state/`` folder go here.
        progress: None, a callback ``(done, total, description)`` or a rich Progress (one task per step).
        device: where to run (default: the model's device).

    Raises:
        InputError / UnknownNameError for bad settings (before any work is done).
    """
    started = time.perf_counter()
    eps_list = _check_epsilons(epsilons)
    eps_max = max(eps_list)
    try:
        norm_value = Norm(norm)
    except ValueError:
        raise InputError(f"unknown norm {norm!r}; use one of {', '.join(n.value for n in Norm)}") from None
    wanted = set(analyses)
    unknown = wanted - set(ANALYSES)
    if unknown:
        raise InputError(f"unknown analyses {', '.join(sorted(unknown))}; choose from {', '.join(ANALYSES)}")
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
        common = {"batch_size": batch_size, "device": device, "trials": trials, "eot": eot, "randomized": randomized,
                  "seed": seed, "model_card": card_of_model, "progress": progress}
        owner = {"model_weights": model_fingerprint(model),
                 "data": {"name": data.name, "n": len(data), "sha256": data.fingerprint()}}
        cache = StepCache(state_dir, {"model_card": card_of_model, **owner,
                                      "seed": seed, "randomized": randomized, "trials": n_trials, "eot": eot,
                                      "batch_size": batch_size})

        def honest(attack: Attack) -> Attack:
            """The attack with EOT gradients when the model is randomized (and EOT is on)."""
            return with_eot(attack) if randomized and eot else attack

        # 1. A curve per attack: one evaluate_attack per ε so ε-relative settings follow ε; one state file each.
        curves: list[tuple[AttackPlan, list[dict[str, Any]], dict[str, Any]]] = []
        for plan in plans:
            points = []
            for index, eps in enumerate(eps_list):
                point = evaluate_attack(model, data, plan.build(eps),
                                        state_path=state_dir / f"curve-{_slug(plan.label)}-{index}.json", **common)
                points.append(point)
            description = describe_attack(honest(plan.build(eps_max)), plan.label) | {
                "eps_relative": plan.eps_relative, "epsilons": eps_list}
            curves.append((plan, [p.to_dict() for p in points], description))
            del points
        # Headline: the strongest attack over the whole ε range (lowest mean robust accuracy; ties -> later attack).
        headline_index = min(range(len(curves)), key=lambda i: (
            sum(p["robust_accuracy"] for p in curves[i][1]) / len(eps_list), -i))
        head_plan, head_points, head_description = curves[headline_index]
        clean = head_points[0]["clean_accuracy"]

        # 2. The worst case over every bounded attack at the largest ε.
        stages = [CascadeStage(plan.label, plan.build(eps_max), plan.target_classes) for plan in plans]
        cascade = run_cascade(model, data, stages, keep_adversarial=False, state_path=state_dir / "cascade.json",
                              **common)

        # 3. Sanity checks at the largest ε.
        check_results: list[dict[str, Any]] = []
        if checks:
            check_set = dataset.subset(check_points, seed=seed)
            check_x, check_y = check_set.float_images().to(device), check_set.labels.to(device)
            overrides: dict[str, Attack | None] = {}
            if randomized and eot:
                from advlab.evaluate.checks import default_check_attacks

                overrides = {name: (with_eot(attack) if attack is not None and name != "black_box" else attack)
                             for name, attack in default_check_attacks(eps_max, norm_value).items()}
            check_results = cache.run("checks", {"eps": eps_max, "norm": norm_value.value, "points": check_points,
                                                 "attacks": {k: describe_attack(v) for k, v in overrides.items()
                                                             if v is not None}},
                                      lambda: [c.to_dict() for c in run_checks(
                                          model, check_x, check_y, eps_max, norm=norm_value, attacks=overrides or None,
                                          max_points=check_points, seed=seed, batch_size=batch_size)])

        # 4. Analyses on small subsets.
        summaries: dict[str, Any] = {}
        for plan, points, description in curves:
            if plan is not head_plan:
                summaries[f"curve: {plan.label}"] = _curve_payload(plan.label, description, points, clean, norm_value)
        for name, attack in extra_unbounded:
            summaries[name] = evaluate_attack(model, data, honest(attack),
                                              state_path=state_dir / f"single-{_slug(name)}.json", **common).to_dict()
        if wanted:
            summaries.update(_run_analyses(
                model, dataset, wanted, cache=cache, plan=head_plan, eps_list=eps_list, eps_max=eps_max,
                norm=norm_value, honest=honest, seed=seed, batch_size=batch_size, device=device, progress=progress,
                analysis_points=analysis_points, grid_per_class=grid_per_class, state_dir=state_dir, common=common))

        # 5. The card.
        curve = RobustnessCurve(attack=head_description, points=(), randomized=randomized,
                                eot_samples=cascade.eot_samples, trials=n_trials, n=len(data), data_name=data.name)
        card = build_card(
            model_card=card_of_model,
            data={"name": dataset.name, "n": len(dataset), "seed": seed, "classes": list(dataset.classes),
                  "suite": suite, "norm": norm_value.value, "epsilons": eps_list},
            curve=curve, cascade=cascade, analyses=summaries, seed=seed, duration_s=time.perf_counter() - started)
        card.results = to_jsonable(head_points)
        card.checks = to_jsonable(check_results)
        last = len(eps_list) - 1
        card.cascade = fold_in_curve_runs(
            card.cascade, state_dir / "cascade.json",
            [state_dir / f"curve-{_slug(plan.label)}-{last}.json" for plan in plans],
            trials=n_trials, batches=data.num_batches(batch_size), eps=eps_max, norm=norm_value,
            owner=owner)
        save_card(out / "card.json", card)
        return card


def _state_records(path: Path, owner: dict[str, Any]) -> dict[str, Any]:
    """The per-batch records of an :class:`~advlab.evaluate.state.EvaluationState` file written for ``owner``.

    ``owner`` holds the entries every state config of this evaluation shares (model weights, data); a file whose
    config disagrees belongs to another evaluation and is never read as this one's.
    """
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        records, config = stored["records"], stored["config"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AdvlabError(f"evaluation state file {path} is unreadable ({exc}); delete {path.parent} to "
                          "start the evaluation over") from exc
    expected = to_jsonable(owner)
    if any(config.get(key) != value for key, value in expected.items()):
        raise AdvlabError(f"evaluation state file {path} belongs to another evaluation (other model or data); "
                          f"delete {path.parent} and run again with an --out of its own")
    return records


def fold_in_curve_runs(cascade: dict[str, Any], cascade_state: Path, curve_states: Sequence[Path], *, trials: int,
                       batches: int, eps: float, norm: Norm, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cascade summary, extended by the points that the curves' own runs at the largest ε fooled.

    The cascade and the curves attack the same points at the largest ε with independent random starts, so a
    point can survive the cascade's PGD yet fall to the curve's PGD. A worst case must count it as fooled: when
    that happens, a last stage "other runs" is appended (per trial: a point is robust only if no run fooled it),
    so the cascade's final number is the worst case over *every* attack run at that ε and never above a curve.
    Reads the per-sample records of the state files (``fooled_by`` of the cascade, ``robust`` of the curves),
    refusing any whose config does not match ``owner`` (the model weights and data of this evaluation).
    """
    from advlab.evaluate.cascade import NOT_FOOLED
    from advlab.evaluate.randomness import mean_std

    cascade_records = _state_records(cascade_state, owner or {})
    curve_records = [_state_records(path, owner or {}) for path in curve_states]
    accuracy, newly_fooled = [], []
    for trial in range(trials):
        robust = [value == NOT_FOOLED for batch in range(batches)
                  for value in cascade_records[f"t{trial}/b{batch}"]["fooled_by"]]
        before = sum(robust)
        for records in curve_records:
            other = [bool(value) for batch in range(batches) for value in records[f"t{trial}/s0/b{batch}"]["robust"]]
            robust = [mine and theirs for mine, theirs in zip(robust, other, strict=True)]
        newly_fooled.append(before - sum(robust))
        accuracy.append(sum(robust) / len(robust))
    if not any(newly_fooled):
        return cascade
    mean, std = mean_std(accuracy)
    # Like the cascade's own stages: newly fooled points and queries of the first trial (the runs cost nothing new).
    stage = {"label": "other runs", "attack": {"name": "the curves' runs at this ε", "registry_name": None,
                                              "class": None, "norm": norm.value, "settings": {"eps": eps}},
             "robust_accuracy": mean, "robust_accuracy_std": std, "newly_fooled": newly_fooled[0], "queries": 0}
    trial_rows = [[*row, acc] for row, acc in zip(cascade["trial_stage_robust_accuracy"], accuracy, strict=True)]
    return cascade | {"stages": [*cascade["stages"], stage], "robust_accuracy": mean, "robust_accuracy_std": std,
                      "trial_stage_robust_accuracy": trial_rows}


def _run_analyses(
    model: nn.Module,
    dataset: ImageDataset,
    wanted: set[str],
    *,
    cache: StepCache,
    plan: AttackPlan,
    eps_list: list[float],
    eps_max: float,
    norm: Norm,
    honest: Callable[[Attack], Attack],
    seed: int,
    batch_size: int,
    device: torch.device,
    progress: ProgressLike,
    analysis_points: int,
    grid_per_class: int,
    state_dir: Path,
    common: dict[str, Any],
) -> dict[str, Any]:
    """The requested analyses as report payloads (each one a cached, seeded step)."""
    from advlab.evaluate.payloads import (
        adversarial_examples_payload,
        average_perturbation_payload,
        gradient_norms_payload,
        grid_payload,
        perturbation_payload,
    )

    subset = dataset.subset(analysis_points, seed=seed)
    x, y = subset.float_images().to(device), subset.labels.to(device)
    classes = list(dataset.classes)
    head = honest(plan.build(eps_max))
    head_config = {"attack": describe_attack(head), "points": analysis_points}
    out: dict[str, Any] = {}

    if "statistics" in wanted:
        def statistics() -> dict[str, Any]:
            with seeded(seed, "statistics", device=device):
                run = run_attack(model, (x, y), head, batch_size=batch_size, device=device, keep_adversarial=True,
                                 progress=progress)
            assert run.adv is not None
            adv, fooled = run.adv.to(device), (run.correct & ~run.robust)
            result: dict[str, Any] = {
                "pixel_histograms": pixel_histograms(x, adv).to_dict(),
                "average_perturbation_images": average_perturbation_payload(
                    *average_perturbation_images(x, adv, y, len(classes)), classes=classes),
            }
            if fooled.any():
                result["perturbation_statistics"] = perturbation_payload(x, adv, fooled)
            return result

        out.update(cache.run("statistics", head_config, statistics))

    if "grid" in wanted:
        grid_set = _grid_subset(dataset, grid_per_class, seed)
        grid_attack = honest(_targeted_pgd(eps_max, norm))

        def grid() -> dict[str, Any]:
            result = average_adversarial_grid(model, grid_set, grid_attack, num_classes=len(classes),
                                              batch_size=batch_size, device=device, seed=seed, progress=progress)
            return grid_payload(result, classes=classes)

        out["average_adversarial_grid"] = cache.run(
            "grid", {"attack": describe_attack(grid_attack), "per_class": grid_per_class}, grid)

    if "gradients" in wanted:
        out["gradient_norms"] = cache.run("gradients", {"points": analysis_points}, lambda: gradient_norms_payload(
            input_gradient_norms(model, (x, y), batch_size=batch_size, device=device, progress=progress)))

    if "examples" in wanted:
        def examples() -> dict[str, Any]:
            payload: dict[str, Any] | None = None
            for index, eps in enumerate(eps_list):  # each ε with its own ε-relative settings
                with seeded(seed, "examples", index, device=device):
                    part = adversarial_examples_payload(model, x, y, honest(plan.build(eps)), [eps],
                                                        count=EXAMPLE_COUNT, classes=classes)
                if payload is None:
                    payload = part
                else:
                    payload["rows"] += part["rows"]
            return payload

        out["adversarial_examples"] = cache.run("examples", head_config | {"epsilons": eps_list}, examples)

    if "noise" in wanted:
        out["accuracy_vs_noise"] = cache.run(
            "noise", {"stds": NOISE_STDS, "draws": NOISE_DRAWS, "points": analysis_points},
            lambda: accuracy_vs_noise(model, (x, y), list(NOISE_STDS), draws=NOISE_DRAWS, batch_size=batch_size,
                                      device=device, seed=seed, progress=progress).to_dict())

    if "steps" in wanted:
        sweep_attack = honest(_pgd(eps_max, norm, steps=1))
        out["accuracy_vs_steps"] = accuracy_vs_steps(
            model, (x, y), sweep_attack, list(STEP_COUNTS), state_path=state_dir / "steps.json",
            **common).to_dict()
    return out


def _pgd(eps: float, norm: Norm, *, steps: int) -> Attack:
    """The registry's PGD for ``norm`` with a step of ε/4."""
    import advlab.attacks  # noqa: F401 - registers every attack
    from advlab.attacks.registry import create_attack

    return create_attack("pgd" if norm is Norm.LINF else "pgd_l2", eps=eps, steps=steps, step_fraction=0.25)


def _targeted_pgd(eps: float, norm: Norm) -> Attack:
    return _pgd(eps, norm, steps=GRID_STEPS)


# --- the console summary the CLI prints ------------------------------------------------------------------------
