"""Reading other people's weight files: containers, prefixes, corrupt files, wrong keys, malicious pickles."""

from __future__ import annotations

import argparse
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from advlab.errors import CheckpointError
from advlab.models import create_model, load_foreign_weights, read_state_dict


def small_model() -> nn.Module:
    return create_model("mlp", hidden_sizes=(8,))


def test_reads_safetensors_and_torch_files_alike(tmp_path) -> None:
    state = {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(2)}
    save_file(state, tmp_path / "weights.safetensors")
    torch.save(state, tmp_path / "weights.pt")
    for name in ("weights.safetensors", "weights.pt"):
        loaded = read_state_dict(tmp_path / name)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_unwraps_containers_and_strips_module_prefix(tmp_path) -> None:
    tensor = torch.ones(3)
    torch.save({"best_prec1": 91.73, "state_dict": {"module.layer.weight": tensor}}, tmp_path / "a.th")
    torch.save({"model": {"module.layer.weight": tensor}, "epoch": 3}, tmp_path / "b.th")
    for name in ("a.th", "b.th"):
        loaded = read_state_dict(tmp_path / name)
        assert list(loaded) == ["layer.weight"] and torch.equal(loaded["layer.weight"], tensor)


def test_loads_into_the_model_without_num_batches_tracked_or_normalize(tmp_path) -> None:
    torch.manual_seed(0)
    source = create_model("resnet20")
    state = {f"module.{k}": v for k, v in source.state_dict().items()
             if not k.endswith("num_batches_tracked") and not k.startswith("normalize.")}
    torch.save({"state_dict": state}, tmp_path / "resnet20.th")
    target = create_model("resnet20", normalization="imagenet")
    load_foreign_weights(target, tmp_path / "resnet20.th")
    assert torch.equal(target.layer3[2].conv2.weight, source.layer3[2].conv2.weight)
    assert torch.equal(target.bn1.running_var, source.bn1.running_var)
    assert target.normalize.mean.flatten()[0].item() == pytest.approx(0.485)  # the model keeps its own


def test_wrong_keys_and_shapes_are_reported_together(tmp_path) -> None:
    model = small_model()
    state = dict(model.state_dict())
    state.pop("layers.0.bias")
    state["layers.2.weight"] = torch.zeros(10, 9)  # model has (10, 8)
    state["extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError) as caught:
        load_foreign_weights(model, tmp_path / "bad.safetensors")
    message = str(caught.value)
    assert "layers.0.bias" in message and "extra.weight" in message and "layers.2.weight" in message
    assert "missing" in message and "unexpected" in message and "shape" in message and "strict=False" in message
    # strict=False tolerates missing/unexpected keys, never a shape mismatch.
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_foreign_weights(model, tmp_path / "bad.safetensors", strict=False)
    state["layers.2.weight"] = torch.full((10, 8), 7.0)
    save_file(state, tmp_path / "partial.safetensors")
    load_foreign_weights(model, tmp_path / "partial.safetensors", strict=False)
    assert (model.layers[2].weight == 7).all()


def test_file_for_another_model_is_refused(tmp_path) -> None:
    save_file({"encoder.weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="shares no key"):
        load_foreign_weights(small_model(), tmp_path / "other.safetensors", strict=False)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_files_give_a_clear_error(tmp_path, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    state = small_model().state_dict()
    if suffix == ".safetensors":
        save_file(dict(state), path)
    else:
        torch.save(state, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="again"):
        read_state_dict(path)


@pytest.mark.parametrize("suffix", [".pt", ".th", ".safetensors"])
def test_random_bytes_give_a_clear_error(tmp_path, suffix: str) -> None:
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=str(path.name)):
        read_state_dict(path)


def test_missing_file_and_non_weights_content(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "absent.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "no_tensors.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        read_state_dict(tmp_path / "no_tensors.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        read_state_dict(tmp_path / "list.pt")


class _WritesMarker:
    """Unpickling this object creates a file: a stand-in for code a malicious checkpoint would run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_does_not_run(tmp_path) -> None:
    marker = tmp_path / "pwned"
    payload = {"state_dict": {"w": torch.zeros(1)}, "hook": _WritesMarker(str(marker))}
    torch.save(payload, tmp_path / "evil.pt")
    (tmp_path / "evil_raw.pkl").write_bytes(pickle.dumps(payload))
    for name in ("evil.pt", "evil_raw.pkl"):
        with pytest.raises(CheckpointError, match="trust_pickle"):
            read_state_dict(tmp_path / name)
        with pytest.raises(CheckpointError):
            load_foreign_weights(small_model(), tmp_path / name, strict=False)
    assert not marker.exists()


def test_trust_pickle_reads_files_holding_python_objects(tmp_path) -> None:
    # A harmless non-tensor object (training scripts often save their argparse namespace) is refused by default.
    state = {"w": torch.ones(2)}
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=0.1)}, tmp_path / "with_args.pt")
    with pytest.raises(CheckpointError, match="trust_pickle=True"):
        read_state_dict(tmp_path / "with_args.pt")
    assert torch.equal(read_state_dict(tmp_path / "with_args.pt", trust_pickle=True)["w"], state["w"])
