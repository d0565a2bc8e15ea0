"""The ``advlab`` command line: thin wrappers that parse options, call library functions and print.

User mistakes (an :class:`~advlab.errors.AdvlabError`) print one line and exit with code 2, without a traceback.
Heavy imports happen inside the commands so that ``advlab --help`` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from advlab.errors import AdvlabError

app = typer.Typer(
    name="advlab",
    help="Attack, defend and evaluate image classifiers against adversarial examples.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and verify datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

DataDirOption = typer.Option(None, "--data-dir", help="Dataset folder (else $ADVLAB_DATA, else the user cache).")


@app.callback()
def global_options(
    threads: Optional[int] = typer.Option(
        None, "--threads", help="torch threads (before the command: advlab --threads 1 evaluate ...). Default: "
        "$OMP_NUM_THREADS, else the cores the load average leaves free."),
) -> None:
    """Attack, defend and evaluate image classifiers against adversarial examples."""
    from advlab.threads import configure_threads

    note = configure_threads(threads)
    if note:  # fewer threads than cores because the machine is busy: say so
        err_console.print(note, highlight=False)


@app.command("models")
def models_command() -> None:
    """List the registered models with their dataset, input shape and trainable parameter count."""
    from advlab.models import MODELS, count_parameters, create_model

    table = Table(title="advlab models")
    for column in ("name", "dataset", "input", "parameters", "paper"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for entry in MODELS:
        model = create_model(entry.name)
        shape = "x".join(str(s) for s in entry.info["input_shape"])
        table.add_row(entry.name, entry.info["dataset"], shape, f"{count_parameters(model):,}", entry.info["paper"])
    console.print(table)


@data_app.command("verify")
def data_verify_command(data_dir: Optional[Path] = DataDirOption) -> None:
    """Check every known dataset file under the data folder against its official checksum."""
    from advlab.data.sources import resolve_data_dir, verify_data_dir

    root = resolve_data_dir(data_dir)
    results = verify_data_dir(root)
    table = Table(title=f"checksums under {root}")
    for column in ("file", "status"):
        table.add_column(column)
    failures = 0
    for result in results:
        if result.missing:
            status = "[yellow]missing[/]"
        elif result.ok:
            status = "[green]ok[/]"
        else:
            status = f"[red]MISMATCH[/] (expected {result.expected[:12]}…, got {(result.actual or '')[:12]}…)"
            failures += 1
        table.add_row(str(result.path.relative_to(root)), status)
    console.print(table)
    if failures:
        raise AdvlabError(f"{failures} file(s) under {root} fail their checksum: download them again")
    if results and all(result.missing for result in results):
        raise AdvlabError(f"no dataset file was found under {root}: pass the folder that holds mnist/ or "
                          "cifar-10-batches-py/ with --data-dir (or $ADVLAB_DATA), or fetch them with --download")


ModelArgOption = typer.Option([], "--model-arg", help="Model argument name=value (repeatable), e.g. width=2.")
ModelOption = typer.Option(None, "--model", help="Registry name or package.module:factory.")
WeightsOption = typer.Option(None, "--weights", help="advlab checkpoint or foreign state dict.")
TrustPickleOption = typer.Option(False, "--trust-pickle", help="Allow pickled objects in a foreign torch file.")
SubsetOption = typer.Option(None, "--n", "--subset", help="Use a seeded subset of n images.")
DeviceOption = typer.Option("auto", "--device", help="cpu, cuda or auto.")
CompileAttacksOption = typer.Option(False, "--compile", help="torch.compile the attacks' passes: measures on the "
                                    "first batch what compiling costs and saves here and prints it; pays off only "
                                    "for long runs (needs a C++ compiler).")
DatasetOption = typer.Option(..., "--dataset", help="mnist, cifar10, mnist-sample, imagefolder, ...")
SplitOption = typer.Option("test", "--split")


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in settings.items() if key != "name")


@app.command("train")
def train_command(
    model: str = typer.Option(..., "--model", help="Registry name (see `advlab models`) or package.module:factory."),
    dataset: str = typer.Option(..., "--dataset", help="mnist, cifar10, mnist-sample, imagefolder, ..."),
    data_dir: Optional[Path] = DataDirOption,
    download: bool = typer.Option(False, "--download", help="Fetch missing MNIST/CIFAR-10 files (checksummed)."),
    model_arg: list[str] = ModelArgOption,
    defense: list[str] = typer.Option([], "--defense", help="A registered defense (repeatable: pni + pgd_at)."),
    defense_arg: list[str] = typer.Option(
        [], "--defense-arg", help="Defense setting name=value, or defense.name=value with several defenses."),
    epochs: int = typer.Option(10, "--epochs"),
    batch_size: int = typer.Option(128, "--batch-size"),
    optimizer: str = typer.Option("adam", "--optimizer", help="sgd or adam."),
    lr: float = typer.Option(1e-3, "--lr"),
    momentum: float = typer.Option(0.9, "--momentum"),
    nesterov: bool = typer.Option(False, "--nesterov"),
    weight_decay: float = typer.Option(0.0, "--weight-decay"),
    schedule: str = typer.Option("constant", "--schedule", help="constant, step, cosine, onecycle or triangular."),
    pct_start: float = typer.Option(
        0.3, "--pct-start", help="Share of the steps before the lr peak (onecycle, triangular; Wong et al.: 0.4)."),
    milestones: list[int] = typer.Option([], "--milestone", help="Epoch of an lr step (repeatable)."),
    augment: str = typer.Option("none", "--augment", help="none, cifar (random crop + flip) or "
                                "flip_shift_brightness_contrast (van Everdingen's CNN paper)."),
    val_fraction: float = typer.Option(0.0, "--val-fraction", help="Share of the training set held out."),
    n: Optional[int] = typer.Option(None, "--n", "--subset", help="Train on a seeded subset of n examples."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Checkpoints (last/best) and training state."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run --out already holds."),
    robust_check: int = typer.Option(
        0, "--robust-check", help="PGD-10 accuracy at the defense's ε on this many validation (else training) "
        "images each epoch; best checkpoint by it (guards fast_fgsm against catastrophic overfitting)."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast on CUDA (no effect on CPU)."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 autocast where the CPU has AMX or "
                                  "AVX512-BF16, or on CUDA; fp32 elsewhere), fp32 or bf16; the card records what ran."),
    channels_last: Optional[bool] = typer.Option(
        None, "--channels-last/--no-channels-last", help="NHWC memory format for weights and batches (default: on "
        "for advlab's 3-channel conv nets, where it trains faster; off otherwise)."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the training passes (compiling takes "
                                  "minutes on a small CPU before the first batch; needs a C++ compiler)."),
    device: str = DeviceOption,
    quiet: bool = typer.Option(
        False, "--quiet", help="No output while training (else bars on a terminal, one line per epoch otherwise)."),
) -> None:
    """Train a model (optionally with a defense) and evaluate it on the test split after every epoch."""
    from advlab.cli_util import parse_kwargs, split_scoped_kwargs
    from advlab.data.sources import load_dataset
    from advlab.outputs import check_training_folder
    from advlab.training.recipe import build_defenses, resolve_device, train_with_defense

    check_training_folder(out, resume=resume, overwrite=overwrite)
    resolve_device(device)
    defense_args = split_scoped_kwargs(parse_kwargs(defense_arg), defense)
    setup = build_defenses(defense, defense_args)
    if not quiet:  # every setting in use, defaults included, and the attack an adversarial objective trains on
        for card in setup.cards:
            console.print(f"defense {card['name']}: {_settings_text(card)}", highlight=False, soft_wrap=True)
        build_attack = getattr(setup.objective, "build_attack", None)
        if build_attack is not None:
            attack = build_attack()
            shown = {key: getattr(attack, key) for key in ("eps", "alpha", "steps") if hasattr(attack, key)}
            console.print(f"  training attack: {type(attack).__name__} {_settings_text(shown)}", highlight=False,
                          soft_wrap=True)
    train_set = load_dataset(dataset, "train", data_dir=data_dir, n=n, seed=seed, download=download)
    test_set = load_dataset(dataset, "test", data_dir=data_dir, download=download)
    if channels_last is None:
        channels_last = _channels_last_pays(model)
    result = train_with_defense(
        model, train_set, test_set,
        model_args=parse_kwargs(model_arg), defenses=defense,
        defense_args=defense_args,
        config=dict(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
                    nesterov=nesterov, weight_decay=weight_decay, schedule=schedule, pct_start=pct_start,
                    milestones=tuple(milestones),
                    augmentation=augment, val_fraction=val_fraction, seed=seed, amp=amp, precision=precision,
                    channels_last=channels_last, compile=compile_),
        out_dir=out, resume=resume, device=device, quiet=quiet, robust_check=robust_check,
    )
    from advlab.distributed import is_main

    if not is_main():  # under torchrun only rank 0 reports (it alone wrote the checkpoint)
        return
    final = result.history[-1]
    console.print(f"test accuracy {100 * final['test_acc']:.2f} % after {final['epoch']} epoch(s); "
                  f"checkpoint {result.last_checkpoint}")
    if robust_check and result.best is not None:
        console.print(f"best epoch by the PGD-10 check: {result.best['epoch']} "
                      f"({100 * result.best['value']:.2f} %); checkpoint {result.best_checkpoint}")


@app.command("attack")
def attack_command(
    attack: str = typer.Option(..., "--attack", help="A registered attack, e.g. fgsm, pgd, cw, jsma, zoo, square."),
    model: Optional[str] = ModelOption,
    weights: Optional[Path] = WeightsOption,
    model_arg: list[str] = ModelArgOption,
    dataset: str = DatasetOption,
    data_dir: Optional[Path] = DataDirOption,
    split: str = SplitOption,
    n: Optional[int] = SubsetOption,
    eps: list[str] = typer.Option([], "--eps", help="Budget(s) in [0,1] units: 0.3, 8/255, '1/255,2/255'."),
    attack_arg: list[str] = typer.Option([], "--attack-arg", help="Attack setting name=value (repeatable)."),
    targeted: Optional[str] = typer.Option(None, "--targeted", help="random, least-likely, next or a class."),
    batch_size: int = typer.Option(256, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
    save_adv: Optional[Path] = typer.Option(None, "--save-adv", help="Write adversarial images (.safetensors/.npz)."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the CPU has it natively), fp32 or "
                                  "bf16: the attack's passes (the verdict is always fp32)."),
    compile_: bool = CompileAttacksOption,
    trust_pickle: bool = TrustPickleOption,
    device: str = DeviceOption,
) -> None:
    """Attack a model on a dataset: clean and robust accuracy per ε, success rate, norms and queries."""
    from advlab.cli_util import parse_eps_list, parse_kwargs
    from advlab.data.sources import load_dataset
    from advlab.distributed import init_from_env, is_main, rank_device
    from advlab.evaluate.campaign import run_attack_campaign, save_adversarial
    from advlab.loading import load_model
    from advlab.outputs import check_output_file
    from advlab.training.recipe import resolve_device

    if save_adv is not None:
        check_output_file(save_adv, "--save-adv", (".safetensors", ".npz"))
    device = resolve_device(device)
    if init_from_env(device):  # under torchrun: each rank attacks its share of the batches
        device = str(rank_device(device))
    loaded = load_model(model, weights, model_args=parse_kwargs(model_arg), trust_pickle=trust_pickle, device=device)
    data = load_dataset(dataset, split, data_dir=data_dir, n=n, seed=seed)
    from advlab.evaluate.randomness import declares_stochastic

    if declares_stochastic(loaded.model) and "eot_samples" not in " ".join(attack_arg):
        err_console.print("[yellow]warning:[/] this model is randomized: one gradient sample per step overstates "
                          "its robustness; add --attack-arg eot_samples=10, or use `advlab evaluate` (EOT + trials)")
    settings = {"precision": precision, **({"channels_last": True} if _nhwc_attacks(loaded.card) else {}),
                **({"compile": True} if compile_ else {}), **parse_kwargs(attack_arg)}
    epsilons = parse_eps_list(eps)
    if settings.get("compile"):
        from advlab.attacks.registry import create_attack

        built = create_attack(attack, **settings)
        passes = (-(-len(data) // batch_size) * int(getattr(built, "steps", 1)) * int(getattr(built, "restarts", 1))
                  * max(len(epsilons), 1))
        _print_compile_estimate(loaded.model, data, batch_size, device, settings, passes)
    rows = run_attack_campaign(
        loaded.model, data, attack, epsilons=epsilons, settings=settings,
        targeted=targeted, batch_size=batch_size, seed=seed, device=device, keep_adversarial=save_adv is not None,
    )
    if not is_main():
        return
    table = Table(title=f"{attack} on {data.name} ({len(data)} images)")
    success_label = "target hit" if targeted else "success"
    for column in ("ε", "clean acc", "robust acc", success_label, "mean L2", "mean L∞", "queries/img"):
        table.add_column(column, justify="right")
    for row in rows:
        metrics = row.run.metrics()
        l2, linf = metrics.mean_norms["l2"], metrics.mean_norms["linf"]
        # Targeted: the share that reached its target; untargeted: the share of correct points now misclassified.
        success = float(row.run.success.double().mean()) if targeted else metrics.success_rate
        table.add_row("—" if row.eps is None else f"{row.eps:.4g}", f"{100 * metrics.clean_accuracy:.2f} %",
                      f"{100 * metrics.robust_accuracy:.2f} %", f"{100 * success:.2f} %",
                      "—" if l2 is None else f"{l2:.4f}", "—" if linf is None else f"{linf:.4f}",
                      f"{metrics.queries_per_sample:,.0f}")
    console.print(table)
    if save_adv is not None:
        save_adversarial(save_adv, rows)
        console.print(f"adversarial examples: {save_adv}")


@app.command("evaluate")
def evaluate_command(
    model: Optional[str] = ModelOption,
    weights: Optional[Path] = WeightsOption,
    model_arg: list[str] = ModelArgOption,
    dataset: str = DatasetOption,
    data_dir: Optional[Path] = DataDirOption,
    split: str = SplitOption,
    n: Optional[int] = SubsetOption,
    suite: str = typer.Option("quick", "--suite", help="quick (FGSM, PGD), standard (APGD-CE, APGD-T, Square), "
                                                        "papers."),
    eps: list[str] = typer.Option([], "--eps", help="Budgets in [0,1] units (default: 0.1,0.2,0.3 on MNIST-sized "
                                                    "images, 2/255,4/255,8/255 otherwise)."),
    norm: str = typer.Option("linf", "--norm", help="linf or l2."),
    attack: list[str] = typer.Option([], "--attack", help="Extra registered attacks beside the suite."),
    analyses: list[str] = typer.Option([], "--analyses", help="statistics, grid, gradients, examples, noise, steps, "
                                                              "certified (comma-separated or repeated)."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="certified: the smoothing noise std (default: the "
                                          "σ the model was trained with, else 0.25)."),
    certify_n: int = typer.Option(1000, "--certify-n", help="certified: noise samples per certificate."),
    no_checks: bool = typer.Option(False, "--no-checks", help="Skip the gradient-masking sanity checks."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Repeats for randomized models (default 5)."),
    no_eot: bool = typer.Option(False, "--no-eot", help="Attack randomized models without EOT (the naive number)."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the CPU has it natively), fp32 or "
                                  "bf16: the attacks' forward and backward passes (projection and the passes that "
                                  "judge success stay fp32)."),
    compile_: bool = CompileAttacksOption,
    batch_size: int = typer.Option(256, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs/evaluate"), "--out", help="card.json, report.html, report.md, state/."),
    trust_pickle: bool = TrustPickleOption,
    device: str = DeviceOption,
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Evaluate a model's robustness honestly: curves over ε, the worst-case cascade, sanity checks and the
    report. Killed mid-run, the same command resumes where it stopped."""
    from advlab.cli_util import default_epsilons, parse_eps_list, parse_kwargs
    from advlab.data.sources import load_dataset
    from advlab.evaluate.pipeline import evaluate_model, parse_analyses
    from advlab.loading import load_model
    from advlab.outputs import check_writable
    from advlab.progress import cli_progress
    from advlab.report import build_report
    from advlab.report.console import print_summary
    from advlab.training.recipe import resolve_device

    check_writable(out, "--out")
    device = resolve_device(device)
    loaded = load_model(model, weights, model_args=parse_kwargs(model_arg), trust_pickle=trust_pickle, device=device)
    data = load_dataset(dataset, split, data_dir=data_dir, n=n, seed=seed)
    epsilons = parse_eps_list(eps) or default_epsilons(data.image_shape, norm)
    wanted = {part.strip() for value in analyses for part in value.split(",") if part.strip()}
    certify = "certified" in wanted
    if compile_:
        _print_compile_estimate(loaded.model, data, batch_size, device,
                                {"precision": precision, "channels_last": _nhwc_attacks(loaded.card)}, None)
    with cli_progress(quiet) as progress:
        card = evaluate_model(
            loaded.model, loaded.card, data, suite=suite, epsilons=epsilons, norm=norm, attacks=attack,
            analyses=parse_analyses(sorted(wanted - {"certified"})), checks=not no_checks, trials=trials,
            eot=not no_eot, batch_size=batch_size, seed=seed, out_dir=out, progress=progress, device=device,
            precision=precision, channels_last=_nhwc_attacks(loaded.card), compile=compile_,
        )
    if certify:  # randomized smoothing sits above the evaluation layer: its curves join the card here
        from advlab.certify.analysis import DEFAULT_SIGMA, certified_analysis, training_sigma
        from advlab.evaluate.card import save_card

        trained = training_sigma(loaded.card)
        subset = data.subset(min(200, len(data)), seed=seed)
        card.analyses.update(certified_analysis(
            loaded.model, subset, sigma=sigma or trained or DEFAULT_SIGMA, n=certify_n, seed=seed,
            state_dir=out / "state", trained_sigma=trained))
        save_card(out / "card.json", card)
    build_report([card], out, sources=[out / "card.json"])
    print_summary(card, console)
    console.print(f"card: {out / 'card.json'}")
    console.print(f"report: {out / 'report.html'}")


@app.command("certify")
def certify_command(
    model: Optional[str] = ModelOption,
    weights: Optional[Path] = WeightsOption,
    model_arg: list[str] = ModelArgOption,
    dataset: str = DatasetOption,
    data_dir: Optional[Path] = DataDirOption,
    split: str = SplitOption,
    subset: Optional[int] = typer.Option(None, "--subset", help="Certify a seeded subset of this many images."),
    sigma: float = typer.Option(0.25, "--sigma", help="Noise std in [0,1] pixel units (train the model with it)."),
    n: int = typer.Option(10_000, "--n", help="Noise samples that estimate the top class's probability."),
    n0: int = typer.Option(100, "--n0", help="Noise samples that choose the class."),
    alpha: float = typer.Option(0.001, "--alpha", help="Failure probability of each certificate."),
    batch_size: int = typer.Option(1000, "--batch-size", help="Noisy copies per forward pass."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or auto for the base classifier's "
                                  "passes (bf16 runs a channels_last copy; the certificate stays exact)."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("runs/certify"), "--out", help="certify.json and the resumable state/."),
    trust_pickle: bool = TrustPickleOption,
    device: str = DeviceOption,
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Certify L2 robustness by randomized smoothing (Cohen et al. 2019): per-image class and certified radius,
    and the certified accuracy at each radius. Killed mid-run, the same command resumes."""
    from advlab.certify import certify_dataset
    from advlab.cli_util import parse_kwargs
    from advlab.data.sources import load_dataset
    from advlab.folder_lock import exclusive_folder
    from advlab.io import write_json
    from advlab.loading import load_model
    from advlab.outputs import check_writable
    from advlab.precision import resolve_precision
    from advlab.progress import cli_progress
    from advlab.training.recipe import resolve_device

    check_writable(out, "--out")
    device = resolve_device(device)
    resolve_precision(precision, device)
    loaded = load_model(model, weights, model_args=parse_kwargs(model_arg), trust_pickle=trust_pickle, device=device)
    data = load_dataset(dataset, split, data_dir=data_dir, n=subset, seed=seed)
    with exclusive_folder(out, "certification"), cli_progress(quiet) as progress:
        result = certify_dataset(loaded.model, data, sigma=sigma, n0=n0, n=n, alpha=alpha, batch_size=batch_size,
                                 seed=seed, device=device, state_path=out / "state" / "certify.json",
                                 progress=progress, precision=precision,
                                 channels_last=resolve_precision(precision, device) == "bf16")
        radii = [round(0.25 * i, 2) for i in range(13)]
        write_json(out / "certify.json", {**result.to_dict(), "model": loaded.card, "curve": result.curve(radii)})
    table = Table(title=f"certified accuracy, σ = {sigma:g}, n = {n:,}, α = {alpha:g} ({len(data)} images)")
    for column in ("L2 radius", "certified accuracy"):
        table.add_column(column, justify="right")
    for radius, accuracy in result.curve(radii[:9]):
        table.add_row(f"{radius:.2f}", f"{100 * accuracy:.1f} %")
    console.print(table)
    console.print(f"abstained on {100 * result.abstain_rate:.1f} %; per-image radii: {out / 'certify.json'}")


def _print_compile_estimate(model: Any, data: Any, batch_size: int, device: str, settings: dict[str, Any],
                            planned_passes: int | None) -> None:
    """Measure on the first batch what ``--compile`` costs and saves here, and say it (the compilation is kept
    for the run that follows)."""
    from advlab.attacks.compile_estimate import estimate_compile
    from advlab.precision import resolve_precision

    x, y = next(data.batches(min(batch_size, len(data)), device=device))
    estimate = estimate_compile(model, x, y, precision=resolve_precision(str(settings.get("precision", "fp32")),
                                                                         device),
                                channels_last=bool(settings.get("channels_last")))
    err_console.print(estimate.describe(planned_passes))


def _channels_last_pays(model: str | None) -> bool:
    """True for advlab's registered 3-channel conv nets: NHWC trains ResNet-20 and the 004 CNN 1.24x faster in
    fp32 and more with bf16 (benchmarks/README.md); 1-channel MNIST nets gain nothing, and a user's factory may
    ``.view()`` conv outputs, which NHWC tensors refuse."""
    from advlab.models import MODELS

    return model is not None and model in MODELS.names() and MODELS.entry(model).info.get("input_shape", (1,))[0] == 3


def _nhwc_attacks(card: dict[str, Any]) -> bool:
    """Attack a loaded model with NHWC images: an advlab 3-channel conv net (:func:`_channels_last_pays`) whose
    checkpoint adds no layers of a defense (PNI, a purifier, moment propagation: not measured in NHWC)."""
    from advlab.defenses.registry import DEFENSES

    model = card.get("model")
    name = model.get("name") if isinstance(model, dict) else None
    layered = any(DEFENSES.entry(str(defense.get("name"))).info["kind"] != "objective"
                  for defense in card.get("defenses") or () if str(defense.get("name")) in DEFENSES.names())
    return _channels_last_pays(name) and not layered


@app.command("report")
def report_command(
    cards: list[Path] = typer.Argument(..., help="Evaluation cards (card.json) to put side by side."),
    out: Path = typer.Option(Path("runs/report"), "--out", help="Folder for report.html and report.md."),
    title: Optional[str] = typer.Option(None, "--title"),
) -> None:
    """Rebuild the HTML and markdown report from evaluation cards, without rerunning anything."""
    from advlab.report import build_report

    paths = build_report(cards, out, title=title) if title else build_report(cards, out)
    console.print(f"markdown: {paths.markdown}")
    console.print(f"report: {paths.html}")


@app.command("reproduce")
def reproduce_command(
    name: Optional[str] = typer.Argument(None, help="A preset (see --list) or the path of a .toml preset."),
    list_: bool = typer.Option(False, "--list", help="List the shipped presets and exit."),
    scale: str = typer.Option("quick", "--scale", help="tiny (tests), quick (minutes on a CPU), medium (every "
                              "training run within 2 hours on a 2-core CPU; resumable) or full (the paper's "
                              "recipe)."),
    data_dir: Optional[Path] = DataDirOption,
    out: Optional[Path] = typer.Option(None, "--out", help="Results folder (default runs/reproduce/NAME)."),
    device: str = DeviceOption,
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Rerun a paper's experiment and print the paper's numbers, ours, and the difference."""
    from advlab.experiments import list_presets, run_preset
    from advlab.training.recipe import resolve_device

    if list_ or name is None:
        table = Table(title="advlab reproduce presets")
        for column in ("name", "paper", "what it reproduces", "--scale quick takes", "--scale medium takes"):
            table.add_column(column)
        for preset in list_presets():
            durations = [str(preset.scales[scale].get("duration", "not measured")) if scale in preset.scales
                         else "no such scale" for scale in ("quick", "medium")]
            table.add_row(preset.name, preset.citation(), preset.summary, *durations)
        console.print(table)
        if name is None and not list_:
            raise AdvlabError("name a preset to run, e.g. `advlab reproduce fooling-noise`")
        return
    from advlab.outputs import check_writable

    if out is not None:
        check_writable(out, "--out")
    result = run_preset(name, scale=scale, data_dir=data_dir, out_dir=out, console=console, quiet=quiet,
                        device=resolve_device(device))
    console.print(f"results: {result.markdown_path}")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Checkpoints, evaluation cards and the report."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """The main job: train a standard and an adversarially trained mnist_cnn on the bundled MNIST sample, evaluate
    both honestly and write one HTML report."""
    from advlab.demo import run_demo

    run_demo(out, console=console, quiet=quiet)


def main() -> None:
    """Console-script entry point: turn an AdvlabError into one red line and exit code 2 (no traceback).

    Usage errors (unknown command, bad option) are click's and already exit with code 2 and a short message.
    """
    try:
        app()
    except AdvlabError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
