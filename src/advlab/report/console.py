"""The evaluation card on the terminal: robust accuracy per attack and ε, the worst case, the checks' outcome.

Reads a card and prints; it runs nothing (``advlab evaluate`` and ``advlab demo`` call it after the evaluation).
"""

from __future__ import annotations

from typing import Any

from advlab.evaluate.card import EvaluationCard


def summary_rows(card: EvaluationCard) -> list[tuple[str, list[tuple[float, float, float]]]]:
    """Per attack, in the evaluation's order: ``(label, [(eps, robust accuracy, std), ...])`` from a card."""
    rows = []
    if card.results and card.attacks:
        rows.append((str(card.attacks[0].get("name")), [(r["eps"], r["robust_accuracy"],
                                                          r.get("robust_accuracy_std") or 0.0)
                                                         for r in card.results if r.get("eps") is not None]))
    for name, payload in card.analyses.items():
        if isinstance(payload, dict) and payload.get("kind") == "curve" and name.startswith("curve: "):
            points = payload.get("points") or []
            rows.append((name[len("curve: "):], [(p["eps"], p["robust_accuracy"], p.get("robust_accuracy_std") or 0.0)
                                                 for p in points]))
    # In the evaluation's order (the cascade's stages), not headline first.
    order = [stage.get("label") for stage in (card.cascade or {}).get("stages", [])]
    return sorted(rows, key=lambda row: order.index(row[0]) if row[0] in order else len(order))


def print_summary(card: EvaluationCard, console: Any) -> None:
    """Print robust accuracy per attack × ε, the cascade's worst case and the checks' outcome (rich)."""
    from rich.table import Table

    from advlab.formatting import epsilon, norm_name, percent

    norm = card.data.get("norm") or (card.attacks[0].get("norm") if card.attacks else None)
    rows = summary_rows(card)
    epsilons = sorted({eps for _, points in rows for eps, _, _ in points})
    clean = card.results[0].get("clean_accuracy") if card.results else (card.cascade or {}).get("clean_accuracy")
    label = card.model.get("label") or card.model.get("name") or "model"
    table = Table(title=f"{label} on {card.data.get('name')} ({card.data.get('n')} points), robust accuracy")
    table.add_column("attack")
    table.add_column("clean", justify="right")
    for eps in epsilons:
        table.add_column(f"ε={epsilon(eps, norm)} ({norm_name(norm)})", justify="right")
    for name, points in rows:
        by_eps = {eps: (acc, std) for eps, acc, std in points}
        table.add_row(name, percent(clean), *[percent(*by_eps[eps]) if eps in by_eps else "—" for eps in epsilons])
    if card.cascade:
        cascade = card.cascade
        # Cards of this version hold the worst case at every ε; older ones only at the largest.
        worst = {row["eps"]: (row["robust_accuracy"], row.get("robust_accuracy_std") or 0.0)
                 for row in cascade.get("worst_case") or []}
        if not worst and epsilons:
            worst = {max(epsilons): (cascade.get("robust_accuracy"), cascade.get("robust_accuracy_std"))}
        table.add_row("worst case (every attack)", percent(cascade.get("clean_accuracy")),
                      *[percent(*worst[eps]) if eps in worst else "" for eps in epsilons], style="bold")
    console.print(table)
    if card.trials.get("randomized"):
        console.print(f"randomized model: {card.trials.get('count')} trials (mean ± std), "
                      f"EOT {card.trials.get('eot_samples')} gradient samples")
    if card.checks:
        counts = {status: sum(c.get("status") == status for c in card.checks) for status in ("pass", "warn", "skip")}
        console.print(f"sanity checks: {counts['pass']} pass, {counts['warn']} warn, {counts['skip']} skip")
        for check in card.checks:
            if check.get("status") == "warn":
                console.print(f"  [yellow]warn[/] {check.get('name')}: {check.get('message')} ({check.get('doc')})")
