"""Parametric Noise Injection (PNI): trainable Gaussian noise on weights and/or activations.

Paper: Rakin, He, Fan, "Parametric Noise Injection: Trainable Randomness to Improve Deep Neural Network Robustness
against Adversarial Attack" (CVPR 2019, arXiv:1811.09310).

Every selected tensor v gets   ṽ = v + α·η,   η ~ N(0, σ²),   σ = std of v.detach(),
with α trainable (initialized to 0.25) and trained jointly with the weights under adversarial training (the paper
trains on a clean + PGD mix; see ``advlab.defenses.adversarial_training``). σ is detached, so the gradient reaches
α through η and v only through the identity term. The noise is drawn in **train and eval mode** alike; switch it
off with :func:`set_pni_enabled` or :func:`pni_disabled` ("Test without PNI", paper Tables 2-3).

Locations (``locations="W+A-a"`` or ``{"W", "A-a"}``), on every ``nn.Conv2d`` and ``nn.Linear``:
    * ``W``   PNI-W: the layer's weight.
    * ``A-a`` PNI-A-a: the layer's output (the activation after the conv/linear, before batch-norm/ReLU).
    * ``A-b`` PNI-A-b: the layer's input.
    * ``I``   PNI-I: the network input, taken as the input of the **first** conv/linear layer (the first in
      ``model.named_modules()`` order, which is the order the layers run in for advlab's models; pass
      ``input_layer=`` to choose another). As advlab models normalize inside, this is the normalized image;
      since σ is the tensor's own std, the relative noise level is the same as on the [0, 1] image. ``A-b`` already
      includes the first layer's input, so ``I`` adds nothing on top of ``A-b``.

Granularity (shape of α): ``layer`` one α per tensor; ``channel`` one α per output channel of a weight or per
channel (dim 1) of an activation; ``element`` one α per weight element or per activation element (activation
shapes are found by one dry forward pass, so ``input_shape`` must be known). σ: weights use the whole weight's std
(``channel``: each output channel's std). Activations (``activation_std``):
    * ``"tensor"``: Eq. 6 of the paper -- σ is the std of the whole activation tensor v, i.e. of the batch
      (``channel``: per channel over the batch and the spatial cells). The ``pni`` preset uses this.
    * ``"sample"`` (the library default): **per-sample** statistics -- the std over all of one image's cells
      (``channel``: over one image's spatial cells of each channel; a linear layer has no spatial cells, so its
      channel-wise σ is the per-sample std over its features). A prediction is then independent of which other
      images share the batch, which the paper's batch statistic is not.

Implementation: each selected layer is replaced by a :class:`PNIConv2d` / :class:`PNILinear` (subclasses sharing
the original Parameter objects), so the model's code is untouched and state-dict keys stay
``conv1.weight``, plus ``conv1.pni_alpha_weight`` / ``conv1.pni_alpha_input`` / ``conv1.pni_alpha_output``.
Every α name contains ``pni_alpha``: exclude them from weight decay (``no_weight_decay=["pni_alpha"]``), as the paper
does (weight decay would drive α to 0).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from advlab.defenses.base import TransformBase
from advlab.defenses.registry import register_defense
from advlab.errors import InputError
from advlab.models.registry import MODELS
from advlab.modes import restored_modes

Granularity = Literal["layer", "channel", "element"]
GRANULARITIES: tuple[str, ...] = ("layer", "channel", "element")
ActivationStd = Literal["sample", "tensor"]
ACTIVATION_STDS: tuple[str, ...] = ("sample", "tensor")
LOCATIONS: tuple[str, ...] = ("W", "A-a", "A-b", "I")
ALPHA_PREFIX = "pni_alpha"
_ALPHA_NAMES = {"weight": "pni_alpha_weight", "input": "pni_alpha_input", "output": "pni_alpha_output"}


def parse_locations(locations: str | Iterable[str]) -> frozenset[str]:
    """``"W+A-a"`` or ``{"W", "A-a"}`` -> ``frozenset({"W", "A-a"})``; an unknown or empty set raises InputError."""
    parts = [p.strip() for p in locations.split("+")] if isinstance(locations, str) else [str(p) for p in locations]
    by_upper = {name.upper(): name for name in LOCATIONS}
    unknown = [p for p in parts if p.upper() not in by_upper]
    if unknown or not parts:
        raise InputError(f"PNI locations must be a non-empty combination of {', '.join(LOCATIONS)} (e.g. 'W' or "
                         f"'W+A-a'), got {locations!r}")
    return frozenset(by_upper[p.upper()] for p in parts)


def _sample_std(value: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Per-sample std of an activation (N, C, ...): over all non-batch cells, or per channel over spatial cells."""
    if per_channel and value.dim() > 2:
        return value.std(dim=tuple(range(2, value.dim())), keepdim=True, unbiased=False)
    return value.std(dim=tuple(range(1, value.dim())), keepdim=True, unbiased=False)


def _tensor_std(value: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Eq. 6's σ of an activation (N, C, ...): the std of the whole batch tensor, or per channel (dim 1) over the
    batch and the spatial cells."""
    if per_channel and value.dim() > 1:
        return value.std(dim=(0, *range(2, value.dim())), keepdim=True, unbiased=False)
    return value.std(unbiased=False)


def _weight_std(weight: torch.Tensor, per_channel: bool) -> torch.Tensor:
    if per_channel:
        return weight.std(dim=tuple(range(1, weight.dim())), keepdim=True, unbiased=False)
    return weight.std(unbiased=False)


class PNIMixin:
    """Noise logic shared by :class:`PNIConv2d` and :class:`PNILinear` (an nn.Module mixin)."""

    pni_enabled: bool
    pni_granularity: str
    pni_activation_std: str = "sample"

    def _init_pni(self, locations: frozenset[str], granularity: str, alpha_init: float,
                  activation_shapes: dict[str, tuple[int, ...]], activation_std: str = "sample") -> None:
        self.pni_enabled = True
        self.pni_granularity = granularity
        self.pni_activation_std = activation_std
        self.pni_locations = tuple(sorted(locations))
        weight: torch.Tensor = self.weight  # type: ignore[attr-defined]
        for where in ("weight", "input", "output"):
            if where not in locations:
                continue
            shape = self._alpha_shape(where, granularity, weight, activation_shapes.get(where))
            alpha = nn.Parameter(torch.full(shape, float(alpha_init), dtype=weight.dtype, device=weight.device))
            self.register_parameter(_ALPHA_NAMES[where], alpha)  # type: ignore[attr-defined]

    @staticmethod
    def _alpha_shape(where: str, granularity: str, weight: torch.Tensor,
                     activation_shape: tuple[int, ...] | None) -> tuple[int, ...]:
        if granularity == "layer":
            return (1,)
        if where == "weight":
            return tuple(weight.shape) if granularity == "element" else (weight.shape[0],) + (1,) * (weight.dim() - 1)
        if activation_shape is None:
            raise InputError("element-wise PNI on activations needs the activation shapes: pass input_shape=(C, H, W)")
        if granularity == "element":
            return (1,) + tuple(activation_shape)
        return (1, activation_shape[0]) + (1,) * (len(activation_shape) - 1)

    def _alpha(self, where: str) -> torch.Tensor | None:
        return getattr(self, _ALPHA_NAMES[where], None)

    def _noisy_activation(self, value: torch.Tensor, where: str) -> torch.Tensor:
        alpha = self._alpha(where)
        if alpha is None or not self.pni_enabled:
            return value
        std = _tensor_std if self.pni_activation_std == "tensor" else _sample_std
        with torch.no_grad():
            noise = torch.randn_like(value) * std(value, self.pni_granularity == "channel")
        return value + alpha * noise

    def noisy_weight(self) -> torch.Tensor:
        """The weight used by this forward pass: W + α·η, η ~ N(0, std(W)²) (W itself when noise is off)."""
        weight: torch.Tensor = self.weight  # type: ignore[attr-defined]
        alpha = self._alpha("weight")
        if alpha is None or not self.pni_enabled:
            return weight
        with torch.no_grad():
            noise = torch.randn_like(weight) * _weight_std(weight, self.pni_granularity == "channel")
        return weight + alpha * noise

    @property
    def stochastic(self) -> bool:
        """Declares randomness per layer, so ``any(m.stochastic for m in model.modules())`` follows the switch."""
        return self.pni_enabled

    def pni_extra_repr(self) -> str:
        return (f"pni={'+'.join(self.pni_locations)}, granularity={self.pni_granularity}, "
                f"activation_std={self.pni_activation_std}, enabled={self.pni_enabled}")


class PNIConv2d(PNIMixin, nn.Conv2d):
    """``nn.Conv2d`` with PNI noise on its weight, input and/or output. Build with :func:`inject_pni`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._noisy_activation(x, "input")
        return self._noisy_activation(self._conv_forward(x, self.noisy_weight(), self.bias), "output")

    def folded_with(self, bn: nn.BatchNorm2d) -> nn.Module | None:
        """``bn(self(x))`` as one noisy convolution, for attacks (:mod:`advlab.attacks.folding`); None where noise
        sits on an activation (it would have to pass through BN's affine map too; not folded).

        Eval-mode BN scales each output channel by s = γ/√(σ² + ε) and shifts it, so BN(conv(x, W + α·η) + b) is
        conv(x, (W + α·η)·s) + (b − μ)·s + β: the noise η is drawn exactly as here, in the same order.
        """
        if self._alpha("input") is not None or self._alpha("output") is not None:
            return None
        return _FoldedPNIConv2d(self, bn)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.pni_extra_repr()}"


class _FoldedPNIConv2d(nn.Module):
    """A :class:`PNIConv2d` with weight noise followed by an eval-mode BN, as one convolution (see ``folded_with``)."""

    scale: torch.Tensor  # (C_out, 1, 1, 1): BN's γ/√(σ² + ε)
    bias: torch.Tensor  # (C_out,): the conv's bias and BN's shift, through the scale

    def __init__(self, conv: PNIConv2d, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        if bn.running_mean is None or bn.running_var is None:
            raise InputError("only a batch norm with running statistics can be folded")
        scale = (bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)) / torch.sqrt(
            bn.running_var + bn.eps)
        shift = (bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
        bias = shift if conv.bias is None else conv.bias * scale + shift
        self.conv = conv
        self.register_buffer("scale", scale.detach().view(-1, 1, 1, 1).clone())
        self.register_buffer("bias", bias.detach().clone())

    @property
    def stochastic(self) -> bool:
        """Random exactly when the PNI layer it folds is (see :attr:`PNIMixin.stochastic`)."""
        return self.conv.stochastic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv._conv_forward(x, self.conv.noisy_weight() * self.scale, self.bias)


class PNILinear(PNIMixin, nn.Linear):
    """``nn.Linear`` with PNI noise on its weight, input and/or output. Build with :func:`inject_pni`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._noisy_activation(x, "input")
        return self._noisy_activation(F.linear(x, self.noisy_weight(), self.bias), "output")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.pni_extra_repr()}"


_PNI_CLASS: dict[type[nn.Module], type[nn.Module]] = {nn.Conv2d: PNIConv2d, nn.Linear: PNILinear}


def _convert(layer: nn.Module, locations: frozenset[str], granularity: str, alpha_init: float,
             activation_shapes: dict[str, tuple[int, ...]], activation_std: str) -> nn.Module:
    """Turn ``layer`` into its PNI subclass in place (keeps its parameters, buffers, hooks and settings).

    A class swap, as ``torch.nn.utils.parametrize`` does: the object (and its Parameter objects, which an optimizer
    may already hold) stays the same; only ``forward`` gains the noise and the α parameters are added.
    """
    layer.__class__ = _PNI_CLASS[type(layer)]
    assert isinstance(layer, PNIMixin)  # the class swap above made it one
    layer._init_pni(locations, granularity, alpha_init, activation_shapes, activation_std)
    return layer


def _target_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    # Exact types: a subclass with its own forward would lose its behaviour in the conversion.
    return [(name, m) for name, m in model.named_modules() if type(m) in _PNI_CLASS]


def _input_shape_of(model: nn.Module) -> tuple[int, ...] | None:
    spec = getattr(model, "advlab_spec", None)
    if not isinstance(spec, dict) or "name" not in spec:
        return None
    if spec["name"] not in MODELS:
        return None
    shape = MODELS.entry(spec["name"]).info.get("input_shape")
    return tuple(shape) if shape else None


def _activation_shapes(model: nn.Module, names: Sequence[str], input_shape: tuple[int, ...]
                       ) -> dict[str, dict[str, tuple[int, ...]]]:
    """Per-sample input/output shapes of the named layers, from one no-grad eval-mode forward of zeros."""
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    modules = dict(model.named_modules())
    handles = []
    for name in names:
        def record(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor, name: str = name) -> None:
            shapes[name] = {"input": tuple(inputs[0].shape[1:]), "output": tuple(output.shape[1:])}
        handles.append(modules[name].register_forward_hook(record))
    try:
        with restored_modes(model), torch.no_grad():
            model.eval()
            parameter = next(model.parameters())
            model(torch.zeros((1,) + tuple(input_shape), dtype=parameter.dtype, device=parameter.device))
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def inject_pni(model: nn.Module, *, locations: str | Iterable[str] = "W", granularity: Granularity = "layer",
               alpha_init: float = 0.25, inplace: bool = False, input_layer: str | None = None,
               input_shape: tuple[int, int, int] | None = None, activation_std: ActivationStd = "sample"
               ) -> nn.Module:
    """Add PNI noise to every ``nn.Conv2d`` / ``nn.Linear`` of ``model`` (Rakin et al. 2019).

    Args:
        model: a classifier ([0, 1] images -> logits).
        locations: "W", "A-a", "A-b", "I" or a combination ("W+A-a"); see the module docstring.
        granularity: "layer" (default, one α per tensor), "channel" or "element".
        alpha_init: initial α (paper: 0.25).
        inplace: modify ``model`` itself; by default a deep copy is converted and returned, leaving ``model``
            usable as the noise-free baseline.
        input_layer: name of the layer whose input is the network input for "I" (default: the first conv/linear).
        input_shape: (C, H, W) of one image, needed only for element-wise activation noise; taken from the model
            registry when the model was built by ``create_model``.
        activation_std: σ of activation noise: ``"tensor"`` (the paper's Eq. 6: std of the batch tensor) or
            ``"sample"`` (default: per-sample std); see the module docstring. Weight noise is unaffected.

    Returns the model with PNI layers, noise on. Each PNI layer declares ``stochastic`` (True while its noise is
    on), so evaluation finds the randomness by looking at the modules; see :func:`is_stochastic`.

    Example::

        noisy = inject_pni(create_model("resnet20"), locations="W", granularity="layer")
        optimizer = SGD([...])   # exclude parameters named "*pni_alpha*" from weight decay
    """
    chosen = parse_locations(locations)
    if granularity not in GRANULARITIES:
        raise InputError(f"PNI granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    if not isinstance(alpha_init, (int, float)) or not alpha_init >= 0:
        raise InputError(f"alpha_init must be a number >= 0, got {alpha_init!r}")
    _check_activation_std(activation_std)
    if not inplace:
        model = copy.deepcopy(model)
    layers = _target_layers(model)
    if not layers:
        raise InputError(f"PNI needs nn.Conv2d or nn.Linear layers; {type(model).__name__} has none "
                         "(or it was converted already).")
    names = [name for name, _ in layers]
    first = input_layer if input_layer is not None else names[0]
    if first not in names:
        raise InputError(f"input_layer {first!r} is not a conv/linear layer of the model; choose one of {names}")
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    if granularity == "element" and chosen & {"A-a", "A-b", "I"}:
        shape = input_shape or _input_shape_of(model)
        if shape is None:
            raise InputError("element-wise PNI on activations needs the image shape: pass input_shape=(C, H, W)")
        shapes = _activation_shapes(model, names, shape)
    for name, layer in layers:
        where = {where for where, location in (("weight", "W"), ("output", "A-a"), ("input", "A-b"))
                 if location in chosen}
        if "I" in chosen and name == first:
            where.add("input")
        if where:
            _convert(layer, frozenset(where), granularity, alpha_init, shapes.get(name, _channel_only_shapes(layer)),
                     activation_std)
    return model


def _check_activation_std(activation_std: str) -> None:
    if activation_std not in ACTIVATION_STDS:
        raise InputError(f"PNI activation_std must be one of {', '.join(ACTIVATION_STDS)}, got {activation_std!r}")


def _channel_only_shapes(layer: nn.Module) -> dict[str, tuple[int, ...]]:
    """Channel-wise α needs only the channel counts: (C, 1, 1) for conv activations, (F,) for linear ones."""
    if isinstance(layer, nn.Conv2d):
        return {"input": (layer.in_channels, 1, 1), "output": (layer.out_channels, 1, 1)}
    assert isinstance(layer, nn.Linear)
    return {"input": (layer.in_features,), "output": (layer.out_features,)}


def pni_layers(model: nn.Module) -> list[tuple[str, PNIMixin]]:
    """(name, layer) for every PNI layer of ``model``."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PNIMixin)]


def set_pni_enabled(model: nn.Module, enabled: bool) -> None:
    """Turn the noise of every PNI layer on or off (α keeps its value)."""
    for _, layer in pni_layers(model):
        layer.pni_enabled = bool(enabled)


@contextmanager
def pni_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """``with pni_disabled(model): ...`` runs without PNI noise; every layer's previous switch is restored."""
    layers = pni_layers(model)
    previous = [layer.pni_enabled for _, layer in layers]
    try:
        set_pni_enabled(model, False)
        yield model
    finally:
        for (_, layer), enabled in zip(layers, previous):
            layer.pni_enabled = enabled


def is_stochastic(model: nn.Module) -> bool:
    """True when ``model`` or a submodule declares ``stochastic`` True: a PNI layer with its noise on, or a
    randomized wrapper such as ``InputNoise``. Evaluation then uses EOT and repeated trials."""
    return any(getattr(module, "stochastic", False) is True for module in model.modules())


def pni_alphas(model: nn.Module) -> dict[str, float]:
    """Mean α of every PNI noise source, keyed by parameter name (``"layer1.0.conv1.pni_alpha_weight"``)."""
    return {name: float(p.detach().mean()) for name, p in model.named_parameters() if ALPHA_PREFIX in name}


def pni_alpha_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The α parameters (to put in an optimizer group without weight decay)."""
    return [p for name, p in model.named_parameters() if ALPHA_PREFIX in name]


@register_defense("pni", stochastic=True, paper="Rakin, He, Fan 2019, Parametric Noise Injection (arXiv:1811.09310)",
                  summary="trainable Gaussian noise on weights/activations; train with PGDAdversarialTraining.pni()")
@dataclass(frozen=True, kw_only=True)
class PNITransform(TransformBase):
    """The ``pni`` defense as a model transform: ``apply(model)`` returns a PNI copy of the model.

    Pair it with an adversarial-training objective (the paper: clean + PGD, 0.5 each) and exclude ``pni_alpha``
    parameters from weight decay. ``stochastic = True``: evaluation uses EOT and repeated trials.
    """

    name: ClassVar[str] = "pni"
    stochastic: ClassVar[bool] = True
    #: Parameter-name globs the training loop keeps out of weight decay (which would drive α to 0).
    no_weight_decay: ClassVar[tuple[str, ...]] = ("*pni_alpha*",)

    locations: str = "W"
    granularity: Granularity = "layer"
    alpha_init: float = 0.25
    activation_std: ActivationStd = "sample"

    def __post_init__(self) -> None:
        parse_locations(self.locations)
        if self.granularity not in GRANULARITIES:
            raise InputError(f"PNI granularity must be one of {', '.join(GRANULARITIES)}, got {self.granularity!r}")
        _check_activation_std(self.activation_std)

    def apply(self, model: nn.Module) -> nn.Module:
        return inject_pni(model, locations=self.locations, granularity=self.granularity, alpha_init=self.alpha_init,
                          activation_std=self.activation_std)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "locations": "+".join(sorted(parse_locations(self.locations))),
                "granularity": self.granularity, "alpha_init": self.alpha_init,
                "activation_std": self.activation_std}
