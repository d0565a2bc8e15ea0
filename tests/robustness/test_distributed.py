"""torch.distributed on CPU (gloo, loopback): a 2-rank fit equals the single-process fit, sharded evaluation equals
the single-process evaluation, and the sharding helpers cover every item exactly once."""

from __future__ import annotations

import pytest
import torch
from dist_workers import attack_worker, digits, fit_worker, spawn, tiny_mlp

from advlab.distributed import (
    get_rank,
    get_world_size,
    init_from_env,
    is_main,
    shard_batches,
    shard_dataset,
    shard_indices,
    split_batch,
    wrap_ddp,
)
from advlab.errors import InputError
from advlab.train import TrainConfig, fit


@pytest.mark.parametrize("n,world_size", [(10, 2), (11, 2), (7, 3), (2, 3), (0, 2)])
def test_batch_slices_partition_the_batch(n: int, world_size: int) -> None:
    slices = [split_batch(n, rank, world_size) for rank in range(world_size)]
    covered = [i for part in slices for i in range(n)[part]]
    assert covered == list(range(n))
    sizes = [len(range(n)[part]) for part in slices]
    assert max(sizes) - min(sizes) <= 1


def test_shards_are_disjoint_and_cover_everything() -> None:
    dataset = digits(23, seed=0)
    shards = [shard_dataset(dataset, rank, 3, seed=5) for rank in range(3)]
    assert sorted(len(s) for s in shards) == [7, 8, 8]
    pixels = torch.cat([s.images for s in shards]).flatten(1)
    # Every image appears once: the sorted rows equal the dataset's sorted rows.
    assert torch.equal(pixels.sort(dim=0).values, dataset.images.flatten(1).sort(dim=0).values)
    assert sorted(torch.cat([shard_indices(23, r, 3) for r in range(3)]).tolist()) == list(range(23))
    assert [list(shard_batches(5, r, 2)) for r in range(2)] == [[0, 2, 4], [1, 3]]
    with pytest.raises(InputError, match="outside"):
        shard_indices(4, 2, 2)


def test_single_process_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env("cpu") is False
    assert (get_rank(), get_world_size(), is_main()) == (0, 1, True)
    model = torch.nn.Linear(2, 2)
    assert wrap_ddp(model) is model


def test_torchrun_variables_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(InputError, match="torchrun"):
        init_from_env("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match="not a number"):
        init_from_env("cpu")


# 11 images in batches of 6: one even step (3 + 3 images) and one uneven final step (3 + 2), which the loss
# scaling must still turn into the full batch's mean gradient.
FIT = {"n": 11, "epochs": 2, "batch_size": 6, "optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "seed": 3}


def test_two_rank_fit_equals_single_process_fit(tmp_path, loopback_env) -> None:
    spawn(fit_worker, 2, str(tmp_path), dict(FIT))
    settings = dict(FIT)
    alone = fit(tiny_mlp(), digits(settings.pop("n"), seed=1), config=TrainConfig(**settings),
                val_set=digits(13, seed=2), out_dir=tmp_path / "alone", quiet=True, device="cpu")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    initial = tiny_mlp().state_dict()
    for name, value in alone.model.state_dict().items():
        assert name.startswith("normalize.") or not torch.equal(value, initial[name]), f"{name} did not train"
        for rank in ranks:  # both ranks hold the same weights as the single process (up to float rounding)
            torch.testing.assert_close(rank["state"][name], value, rtol=1e-5, atol=1e-6)
    for rank in ranks:
        for got, want in zip(rank["history"], alone.history, strict=True):
            assert got.keys() == want.keys()
            for key in want:
                if key != "time_s":
                    assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), key
    card = ranks[0]["card"]
    assert card.pop("world_size") == 2
    assert card["dataset"] == alone.card["dataset"] and card["train"] == alone.card["train"]
    # Rank 0 alone wrote the checkpoints, into the one run folder.
    written = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "alone").iterdir())


def test_sharded_attack_equals_single_process(tmp_path, loopback_env) -> None:
    from advlab.attacks import create_attack
    from advlab.evaluate import run_attack

    model = tiny_mlp()
    fit(model, digits(200, seed=4), config=TrainConfig(epochs=3, batch_size=32, optimizer="adam", lr=1e-2),
        quiet=True, device="cpu")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    # 5 batches of 8 (rank 0 takes 3, rank 1 takes 2) and one batch of 37 (rank 1 has nothing to attack).
    batch_sizes = [8, 37]
    spawn(attack_worker, 2, str(tmp_path), batch_sizes)
    for batch_size in batch_sizes:
        alone = run_attack(model, digits(37, seed=3), create_attack("fgsm", eps=0.03), batch_size=batch_size,
                           keep_adversarial=True)
        metrics = alone.metrics()
        assert 0 < metrics.robust_accuracy < metrics.clean_accuracy  # the attack does something to compare
        for rank in range(2):
            run = torch.load(tmp_path / f"attack{rank}-b{batch_size}.pt", weights_only=False)
            for field in ("labels", "clean_pred", "adv_pred", "adv"):
                assert torch.equal(getattr(run, field), getattr(alone, field)), field
            for name, values in alone.norms.items():
                assert torch.equal(run.norms[name], values), name
            assert run.queries == alone.queries
            assert run.metrics() == metrics


@pytest.mark.slow
def test_torchrun_cli_train_matches_the_single_process_card(tmp_path, cli_env) -> None:
    """``torchrun --nproc_per_node=2 -m advlab train ...`` end to end (no ``--n``: torchrun's own parser would
    take it for an abbreviation of its ``--nnodes``/``--nproc-per-node``)."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from dist_workers import free_port

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed beside this Python")
    # fp32: under bf16 (the CLI's auto on CPUs with AMX) two half batches and one whole batch round differently.
    train = ["-m", "advlab", "train", "--model", "mlp", "--dataset", "mnist-sample", "--epochs", "1",
             "--batch-size", "64", "--quiet", "--device", "cpu", "--precision", "fp32"]
    env = {**cli_env, "GLOO_SOCKET_IFNAME": "lo"} if Path("/sys/class/net/lo").exists() else cli_env
    launched = subprocess.run([str(torchrun), "--nnodes", "1", "--nproc_per_node", "2", "--master_addr",
                               "127.0.0.1", "--master_port", str(free_port()), *train, "--out", str(tmp_path / "ddp")],
                              env=env, check=False, capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    alone = subprocess.run([sys.executable, *train, "--out", str(tmp_path / "alone")], env=cli_env,
                           check=False, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-3000:]
    ddp_card = json.loads((tmp_path / "ddp" / "last.json").read_text())
    alone_card = json.loads((tmp_path / "alone" / "last.json").read_text())
    assert ddp_card.pop("world_size") == 2 and "world_size" not in alone_card
    for key in ("dataset", "train", "objective", "seed", "epochs_completed"):
        assert ddp_card[key] == alone_card[key], key
    for key in ("train_loss", "train_acc", "test_acc"):
        assert ddp_card["metrics"][0][key] == pytest.approx(alone_card["metrics"][0][key], rel=1e-3), key
