"""Square attack: scores only, stays in the L∞ ball, counts queries per image, follows the paper's p schedule."""

from __future__ import annotations

from advlab.attacks.square import SquareAttack, square_fraction

from .conftest import assert_in_box


def test_p_schedule() -> None:
    assert square_fraction(0.8, 0, 1000) == 0.8
    assert square_fraction(0.8, 2, 1000) == 0.4  # 20 of 10,000 rescaled: past the first milestone
    assert square_fraction(0.8, 999, 1000) == 0.8 / 512
    assert square_fraction(0.8, 5, 100) == 0.8 / 8  # 500 rescaled: past 200, not past the 500 milestone


def test_reduces_accuracy_inside_the_ball_without_gradients(scores_only_cnn, batch) -> None:
    x, y = batch
    eps = 0.2
    result = SquareAttack(eps=eps, steps=300)(scores_only_cnn, x, y)
    assert result.clean_accuracy == 1.0
    assert result.robust_accuracy <= 0.5
    assert float(result.norms["linf"].max()) <= eps + 1e-6
    assert_in_box(result.adv)
    assert result.queries == int(result.extras["queries"].sum())
    assert int(result.extras["queries"].max()) <= 301


def test_targeted(scores_only_cnn, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    result = SquareAttack(eps=0.3, steps=300)(scores_only_cnn, x, target=(y + 1) % 10)
    assert result.success_rate >= 0.5
