"""Write the medium scale's numbers into experiments/results/README.md from the runs' own results.json.

The README's fidelity section of each CIFAR-10 preset carries a table of the paper's numbers beside the quick and the
medium run's, and "The medium scale" section a table of the runs themselves (date, duration, CPU, the networks and
their time per epoch). Both are read from ``experiments/results/<preset>/results.json`` (quick) and
``experiments/results/<preset>-medium/results.json`` (medium) and written between marker comments, so no number in
them is typed by hand; a preset whose medium run has not finished says so.

    .venv/bin/python experiments/medium_tables.py            # rewrite the tables in place
    .venv/bin/python experiments/medium_tables.py --check    # exit 1 when the README is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from advlab.experiments.runner import earlier_evaluation_s, earlier_training_s, format_cell

RESULTS = Path(__file__).parent / "results"
README = RESULTS / "README.md"

# The medium presets, and the extension rows (advlab's, no paper number) that answer each preset's question and so
# belong beside the paper's numbers: a regular expression over the row keys.
PRESETS: dict[str, str] = {
    "cnn-adversarial": (r"(eot_fgsm_acc|input_noise\.clean_acc|checks_flag_masking|vanishing_gradient_share"
                        r"|t0\.01\.zero_gradient_share|distillation_t4\.fgsm_acc)$"),
    "stochastic-feedforward": (r"(clean_acc_test_split|stochastic_whitebox\.k[0-9.]+|stochastic_heldout\.k0\.5"
                               r"|ensemble\.gain_k0\.5|ensemble\.clean_loss)$"),
    "pni": r"(_acc_eot|worst_case(_trial0|_redrawn_expected|_redrawn_majority)?_acc|worst_case_fooled_by_draw)$",
}


def load(folder: str) -> dict[str, Any] | None:
    path = RESULTS / folder / "results.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def comparison_table(preset: str, quick: dict[str, Any] | None, medium: dict[str, Any]) -> str:
    """The paper's numbers measured at medium, and the preset's headline extension rows, with quick beside."""
    pattern = re.compile(PRESETS[preset])
    quick_rows = {row["key"]: row for row in (quick or {}).get("rows", [])}
    lines = ["| item | quantity | paper | quick | medium | Δ medium − paper |", "|---|---|---:|---:|---:|---:|"]
    for row in medium["rows"]:
        if row["ours"] is None or not (row["paper"] is not None or pattern.search(row["key"])):
            continue
        before = quick_rows.get(row["key"], {})
        lines.append(f"| {row['table']} | {row['label']} (`{row['key']}`) | "
                     f"{format_cell(row['paper'], unit=row['unit'], std=row['paper_std'])} | "
                     f"{format_cell(before.get('ours'), unit=row['unit'], std=before.get('ours_std'))} | "
                     f"{format_cell(row['ours'], unit=row['unit'], std=row['ours_std'])} | "
                     f"{format_cell(row['delta'], signed=True, unit=row['unit'])} |")
    return "\n".join(lines)


def status_table(runs: dict[str, dict[str, Any] | None]) -> str:
    """One line per medium run: when, how long, on which CPU, and each network's training time."""
    lines = ["| preset | started (UTC) | duration | CPU, threads | networks: median s / epoch, training time |",
             "|---|---|---:|---|---|"]
    for preset, medium in runs.items():
        if medium is None:
            lines.append(f"| {preset} | not finished | — | — | — |")
            continue
        machine = medium["machine"]
        training = medium["extras"].get("training", {})
        duration = (medium["duration_s"] + earlier_training_s(training) + earlier_evaluation_s(medium["extras"])) / 60
        networks = "; ".join(f"{name}: {entry['median_epoch_s']:.0f} s, {entry['training_s'] / 60:.0f} min"
                             for name, entry in training.items() if entry.get("median_epoch_s"))
        cpu = f"{machine.get('cpu', 'CPU not recorded')}, {machine['torch_threads']} threads"
        lines.append(f"| [{preset}]({preset}-medium/results.md) | {medium['started'][:16].replace('T', ' ')} | "
                     f"{duration:.0f} min | {cpu} | {networks} |")
    return "\n".join(lines)


def replace_between(text: str, marker: str, body: str) -> str:
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if start not in text or end not in text:
        raise SystemExit(f"{README} has no '{start}' ... '{end}' pair: add it where the table belongs")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def render(text: str) -> str:
    runs = {preset: load(f"{preset}-medium") for preset in PRESETS}
    text = replace_between(text, "medium-status", status_table(runs))
    for preset, medium in runs.items():
        body = ("The medium run has not finished yet: no numbers." if medium is None
                else comparison_table(preset, load(preset), medium))
        text = replace_between(text, f"medium-table:{preset}", body)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say whether the README is up to date")
    args = parser.parse_args()
    text = README.read_text(encoding="utf-8")
    updated = render(text)
    if args.check:
        print("up to date" if updated == text else f"{README} is out of date: run {Path(__file__).name}")
        return 0 if updated == text else 1
    README.write_text(updated, encoding="utf-8")
    print(f"wrote the medium tables into {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
