#!/usr/bin/env bash
# Issue 4's must-reach on MNIST: Madry's CNN (`mnist_cnn`) trained with PGD adversarial training and with fast
# FGSM from a random start (Wong, Rice, Kolter 2020), both evaluated with PGD-40 (ε 0.3, step 0.01).
#
#   experiments/mnist-adversarial-training/run.sh pgd_at          # PGD-AT                   -> runs/mnist-pgd-at
#   experiments/mnist-adversarial-training/run.sh fast_fgsm       # FGSM-RS                  -> runs/mnist-fast-fgsm
#   experiments/mnist-adversarial-training/run.sh fast_fgsm_wong  # FGSM-RS, Wong's recipe -> runs/mnist-fast-fgsm-wong
#   experiments/mnist-adversarial-training/run.sh small_fgsm      # that on Wong's network   -> runs/mnist-small-fgsm-*
#   experiments/mnist-adversarial-training/run.sh n_fgsm          # N-FGSM                   -> runs/mnist-n-fgsm
#   experiments/mnist-adversarial-training/run.sh grad_align      # FGSM + GradAlign         -> runs/mnist-grad-align
#   experiments/mnist-adversarial-training/run.sh pgd2            # PGD-2 training (cheap)   -> runs/mnist-pgd2
#   experiments/mnist-adversarial-training/run.sh evaluate        # PGD-40 and FGSM on each  -> results/results.md
#
# Environment overrides: DATA (../shared/data); EPOCHS_PGD (5), EPOCHS_FAST (4), EPOCHS_WONG (5), EPOCHS_SMALL
# (10); ALPHA (FGSM-RS step, 0.3); RAMP (FGSM-RS and GradAlign ε ramp-up in epochs, 0); LAMBDA (GradAlign's
# weight, 1.0); START_IN_BOX (fast_fgsm_wong's and small_fgsm's, False); SUFFIX (appended to the PGD-AT, FGSM-RS,
# PGD-2 and GradAlign run folders); N_EVAL (2000 test images); THREADS (torch threads per job, 1: two trainings
# run side by side). Each training writes its per-epoch times to the checkpoint card (metrics[].time_s): the
# time ratio comes from there.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
THREADS=${THREADS:-1}
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
ADVLAB=${ADVLAB:-.venv/bin/advlab}
common=(--model mnist_cnn --dataset mnist --data-dir "$DATA" --optimizer adam --lr 1e-3 --schedule onecycle
        --batch-size 128 --device cpu)

case "${1:-}" in
  pgd_at)
    # PGD-10 in training (step 0.05 from a uniform random start: 10 steps can cross the ε-ball), adversarial
    # loss only, as Madry et al.; PGD-40 of step 0.01 is kept for the evaluation.
    "$ADVLAB" train "${common[@]}" --epochs "${EPOCHS_PGD:-5}" --defense pgd_at \
      --defense-arg eps=0.3 --defense-arg steps=10 --defense-arg step_size=0.05 --out "runs/mnist-pgd-at${SUFFIX:-}" ;;
  fast_fgsm)
    # One FGSM step from a uniform random start; a PGD-10 check on 512 training images each epoch keeps the best
    # checkpoint (the guard against catastrophic overfitting). ALPHA (default 0.3 = ε): Wong et al.'s 1.25·ε =
    # 0.375 overfitted catastrophically in its second epoch on this network (PGD-10 check 0.02 -> 0.00).
    "$ADVLAB" train "${common[@]}" --epochs "${EPOCHS_FAST:-4}" --defense fast_fgsm --defense-arg eps=0.3 \
      --defense-arg step_size="${ALPHA:-0.3}" --defense-arg eps_ramp_epochs="${RAMP:-0}" --robust-check 512 \
      --out "runs/mnist-fast-fgsm${SUFFIX:-}" ;;
  fast_fgsm_wong)
    # Wong et al.'s MNIST recipe as their code runs it: the gradient taken at the *unclipped* random start
    # (start_in_box=False; their CIFAR-10 code clips it), α = 1.25·ε, Adam with the triangular ("cyclic") lr
    # peaking at 5e-3 at 2/5 of training. The same PGD-10 check and best checkpoint as fast_fgsm.
    # START_IN_BOX=True SUFFIX=-clipped is the control: the same recipe with the start clipped to [0, 1].
    "$ADVLAB" train --model mnist_cnn --dataset mnist --data-dir "$DATA" --optimizer adam --lr 5e-3 \
      --schedule triangular --pct-start 0.4 --batch-size 128 --device cpu --epochs "${EPOCHS_WONG:-5}" \
      --defense fast_fgsm --defense-arg eps=0.3 --defense-arg step_size=0.375 \
      --defense-arg start_in_box="${START_IN_BOX:-False}" --robust-check 512 \
      --out "runs/mnist-fast-fgsm-wong${SUFFIX:-}" ;;
  small_fgsm)
    # The same recipe on Wong et al.'s own MNIST network (mnist_small, 1/20 of mnist_cnn's parameters), their 10
    # epochs; START_IN_BOX=True clips the random start as the CIFAR-10 code does, the contrast that matters.
    box=${START_IN_BOX:-False}
    "$ADVLAB" train --model mnist_small --dataset mnist --data-dir "$DATA" --optimizer adam --lr 5e-3 \
      --schedule triangular --pct-start 0.4 --batch-size 128 --device cpu --epochs "${EPOCHS_SMALL:-10}" \
      --defense fast_fgsm --defense-arg eps=0.3 --defense-arg step_size=0.375 --defense-arg start_in_box="$box" \
      --robust-check 512 --out "runs/mnist-small-fgsm-start-in-box-$box" ;;
  n_fgsm)
    # N-FGSM (de Jorge et al. 2022): the same single step of α = ε, from U(−2ε, 2ε) noise, not projected back.
    "$ADVLAB" train "${common[@]}" --epochs "${EPOCHS_FAST:-4}" --defense n_fgsm --defense-arg eps=0.3 \
      --robust-check 512 --out runs/mnist-n-fgsm ;;
  pgd2)
    # The cheapest multi-step method: PGD-2 of step ε/2 from a uniform random start (two steps reach any corner
    # of the ball), adversarial loss only, with the same PGD-10 check and best checkpoint as the single-step runs.
    "$ADVLAB" train "${common[@]}" --epochs "${EPOCHS_FAST:-4}" --defense pgd_at --defense-arg eps=0.3 \
      --defense-arg steps=2 --defense-arg step_size=0.15 --robust-check 512 --out "runs/mnist-pgd2${SUFFIX:-}" ;;
  grad_align)
    # FGSM from the clean point (α = ε) plus λ·(1 − cos) between the input gradients at x and at x + U(−ε, ε)
    # (Andriushchenko & Flammarion 2020), the same PGD-10 check and best checkpoint as fast_fgsm.
    "$ADVLAB" train "${common[@]}" --epochs "${EPOCHS_FAST:-4}" --defense grad_align --defense-arg eps=0.3 \
      --defense-arg align_weight="${LAMBDA:-1.0}" --defense-arg eps_ramp_epochs="${RAMP:-0}" --robust-check 512 \
      --out "runs/mnist-grad-align${SUFFIX:-}" ;;
  evaluate)
    # PGD-40 / FGSM on each run's chosen checkpoint -> experiments/mnist-adversarial-training/results/
    .venv/bin/python experiments/mnist-adversarial-training/report.py --data-dir "$DATA" --n "${N_EVAL:-2000}" ;;
  *) echo "usage: $0 pgd_at|fast_fgsm|fast_fgsm_wong|small_fgsm|n_fgsm|grad_align|pgd2|evaluate" >&2; exit 2 ;;
esac
