"""Every registered model: parameter counts from the papers, [0,1]-in/logits-out contract, forward/backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.errors import AdvlabError, InputError, UnknownNameError
from advlab.models import MODELS, Normalize, ShortcutA, count_parameters, create_model, list_models
from advlab.models.layers import CIFAR10_MEAN, IMAGENET_MEAN, MNIST_MEAN

# Trainable parameter counts stated by the papers / reference implementations.
PAPER_PARAMETER_COUNTS = {
    "mlp": 269_322,  # 784*256+256 + 256*256+256 + 256*10+10
    "mnist_cnn": 3_274_634,
    "mnist_small": 166_406,  # 16*16+16 + 32*16*16+32 + 1568*100+100 + 100*10+10 (Wong & Kolter's code)
    "cifar_cnn": 150_314,  # Keras reports 150,954: it adds the 640 BN running means/vars
    "resnet20": 269_722,  # akamaster/pytorch_resnet_cifar10: 0.27M
    "resnet32": 464_154,  # 0.46M
    "resnet44": 658_586,  # 0.66M
    "resnet56": 853_018,  # 0.85M
    "resnet18": 11_173_962,  # kuangliu/pytorch-cifar
    "nin": 966_986,  # Lin et al.'s CIFAR-10 Caffe model without BN: 14,592+30,880+15,456+460,992+2*37,056
    #                  +331,968+37,056+1,930
    "nin_bn": 968_394,  # the same convs without bias where a BN follows (963,648 + cccp6's 1,930) + 2,816 BN γ/β
}


def test_every_registered_model_has_a_known_parameter_count() -> None:
    assert set(list_models()) == set(PAPER_PARAMETER_COUNTS)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMETER_COUNTS))
def test_parameter_count_matches_the_paper(name: str) -> None:
    assert count_parameters(create_model(name)) == PAPER_PARAMETER_COUNTS[name]


def test_cifar_cnn_counts_like_keras_with_running_statistics() -> None:
    model = create_model("cifar_cnn")
    running = sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules()
                  if isinstance(m, nn.BatchNorm2d))
    assert count_parameters(model) + running == 150_954


def cifar_resnet_parameters(depth: int, width: float) -> int:
    """Closed form for option-A CIFAR ResNets: convs without bias, 2 parameters per BN channel, linear layer."""
    n = (depth - 2) // 6
    c1, c2, c3 = (int(round(c * width)) for c in (16, 32, 64))
    stem = 3 * 9 * c1 + 2 * c1
    def stage(c_in: int, c: int) -> int:
        first = 9 * c_in * c + 9 * c * c + 4 * c
        return first + (n - 1) * (2 * 9 * c * c + 4 * c)
    return stem + stage(c1, c1) + stage(c1, c2) + stage(c2, c3) + c3 * 10 + 10


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
@pytest.mark.parametrize("width", [1, 1.5, 2, 4])
def test_wide_resnet_parameter_counts(depth: int, width: float) -> None:
    assert count_parameters(create_model(f"resnet{depth}", width=width)) == cifar_resnet_parameters(depth, width)


def test_pni_wide_resnet20_sizes_match_the_paper() -> None:
    # PNI (He, Rakin, Fan 2019): ResNet-20 widths 1x/1.5x/2x/4x have 0.27M/0.60M/1.07M/4.29M parameters.
    millions = [count_parameters(create_model("resnet20", width=w)) / 1e6 for w in (1, 1.5, 2, 4)]
    assert millions == pytest.approx([0.27, 0.60, 1.07, 4.29], abs=0.006)


@pytest.mark.parametrize("entry", list(MODELS), ids=lambda entry: entry.name)
def test_forward_backward_every_registered_model(entry) -> None:
    torch.manual_seed(0)
    model = create_model(entry.name).train()
    assert entry.info["num_classes"] == 10
    x = torch.rand(2, *entry.info["input_shape"], requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad}"
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # deterministic in eval mode (dropout off)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMETER_COUNTS))
def test_normalize_is_the_first_step(name: str) -> None:
    model = create_model(name)
    normalizers = [module for module in model.modules() if isinstance(module, Normalize)]
    assert len(normalizers) == 1
    first = normalizers[0]
    # The first thing forward does is normalize: a hook on Normalize sees the raw [0, 1] input.
    seen = []
    first.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x = torch.rand(1, *MODELS.entry(name).info["input_shape"])
    model.eval()(x)
    assert len(seen) == 1 and torch.equal(seen[0], x)


@pytest.mark.parametrize(("name", "default_mean"), [("mlp", MNIST_MEAN), ("mnist_cnn", MNIST_MEAN),
                                                   ("cifar_cnn", CIFAR10_MEAN), ("resnet20", CIFAR10_MEAN),
                                                   ("resnet18", CIFAR10_MEAN), ("nin", CIFAR10_MEAN)])
def test_default_normalization_is_the_datasets_own(name: str, default_mean: tuple[float, ...]) -> None:
    normalize = next(m for m in create_model(name).modules() if isinstance(m, Normalize))
    assert normalize.mean.flatten().tolist() == pytest.approx(default_mean)


def test_normalization_argument_changes_the_statistics_and_outputs() -> None:
    torch.manual_seed(0)
    cifar = create_model("resnet20").eval()
    imagenet = create_model("resnet20", normalization="imagenet").eval()
    none = create_model("resnet20", normalization="none").eval()
    assert imagenet.normalize.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)
    weights = {k: v for k, v in cifar.state_dict().items() if not k.startswith("normalize.")}
    imagenet.load_state_dict(weights, strict=False)  # same weights, only the Normalize buffers differ
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(cifar(x), imagenet(x))
    assert torch.equal(none.normalize(x), x)


def test_bad_normalization_names_and_channel_counts_are_clear_errors() -> None:
    with pytest.raises(UnknownNameError, match="choose one of"):
        create_model("resnet20", normalization="cifar100")
    with pytest.raises(InputError, match="3 channel statistics"):
        create_model("mnist_cnn", normalization="imagenet")
    with pytest.raises(AdvlabError, match="6n\\+2"):
        from advlab.models import cifar_resnet
        cifar_resnet(21)
    with pytest.raises(InputError, match="width"):
        create_model("resnet20", width=0)


def test_resnet20_uses_the_pretrained_module_names() -> None:
    keys = set(create_model("resnet20").state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer3.2.bn2.bias", "linear.weight",
            "linear.bias", "normalize.mean", "normalize.std"} <= keys
    assert not any("shortcut" in key for key in keys)  # option A has no parameters or buffers


def test_option_a_shortcut_subsamples_and_zero_pads_channels() -> None:
    model = create_model("resnet20")
    shortcuts = [m for m in model.modules() if isinstance(m, ShortcutA)]
    assert len(shortcuts) == 2  # entries of stages 2 and 3
    x = torch.randn(2, 16, 32, 32)
    y = shortcuts[0](x)
    assert y.shape == (2, 32, 16, 16)
    # planes // 4 = 8 zero channels on each side, the subsampled input in between.
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


def test_resnet_blocks_use_relu_modules_for_converters() -> None:
    model = create_model("resnet20")
    relus = [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 1 + 2 * 9  # stem + two per BasicBlock
    assert "layer2.0.shortcut" in dict(model.named_modules())


def test_nin_final_relu_option_reproduces_the_caffe_model() -> None:
    torch.manual_seed(0)
    model = create_model("nin", final_relu=True).eval()
    with torch.no_grad():
        assert (model(torch.rand(4, 3, 32, 32)) >= 0).all()
    default = create_model("nin")
    assert not any(name == "relu_cccp6" for name, _ in default.features.named_children())
