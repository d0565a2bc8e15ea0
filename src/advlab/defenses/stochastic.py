"""The stochastic feedforward network: propagate input-noise moments through a trained classifier.

Paper: Jin, Dundar, Culurciello, "Robust convolutional neural networks under adversarial noise" (2015,
arXiv:1511.06306). Every input pixel is modelled as an independent Gaussian N(x, σ_N²); instead of sampling, the
network propagates the mean and variance of every unit layer by layer (:mod:`advlab.defenses.moments` holds the
math) and classifies with the **output means**. The trained weights are used unchanged; the conversion is a
test-time transform (batch-norm always uses its running statistics, dropout is the identity).

Units: ``input_variance`` is σ_N² in **[0, 1] pixel units** (σ_N² = 0.01 means a pixel std of 0.1 = 25.5/255).
The paper states σ_N² for its preprocessed inputs (normalized/whitened), i.e. in other units; convert once when
reproducing its numbers: a variance v in normalized units (x − mean)/std is v·std² in [0, 1] units.

How a model is converted (:class:`MomentNetwork`):
    * A **rule** per module type maps :class:`~advlab.defenses.moments.Moments` to Moments
      (``register_moment_rule(ModuleType)(fn)``). Built-in rules: Conv2d, Linear, BatchNorm1d/2d, ReLU,
      MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Identity, Dropout*, advlab's ``Normalize``,
      ``nn.Sequential`` (folds its children) and the PNI layers (only with their noise off).
    * A module without a rule (a ResNet, a BasicBlock, a shortcut module) is **traced with torch.fx** and its graph
      is interpreted with moment-aware versions of the functions it calls: relu, +, −, × and ÷ by constants,
      avg/max/adaptive pooling, mean over dims, flatten/view/reshape/slicing/padding/cat (applied alike to mean and
      variance), dropout (identity). So the glue inside custom blocks needs no hand-written rule.
    * **Residual additions** (``out + shortcut(x)``) add means and add variances. This is the independence
      approximation: both branches depend on the same input noise, so the true variance also has a covariance
      term that is ignored here (as the paper ignores correlations between units everywhere).
    * A standard torch.nn module without a rule (e.g. ``nn.Tanh``), a call that cannot be traced, or an unsupported
      operation on a noisy tensor raises :class:`~advlab.errors.InputError` naming the module type or operation.

Attacks: ``MomentNetwork.forward`` returns the output means as logits and is differentiable, so gradient attacks
run through it unchanged; it is deterministic (``stochastic = False``), no EOT is needed. Gradients are
first-order only (the ReLU rule has a hand-written backward; double backward raises). ``torch.func`` works.

Cost: the variance path doubles every convolution, and the censored-normal ReLU is ~15 elementwise passes where a
ReLU is one, so the ReLU math dominates. Two measures keep it down: a conv directly followed by an eval batch-norm
is folded into one conv (for mean and variance), and the ReLU rule is one autograd node with in-place steps that
saves 3 tensors for backward. Expect a few times the standard forward's time and memory; the cost ratio against
smoothing's sampling is measured in ``benchmarks/README.md``.
"""

from __future__ import annotations

import builtins
import math
import operator
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from advlab.defenses import moments as mom
from advlab.defenses.base import TransformBase
from advlab.defenses.moments import DEFAULT_VAR_FLOOR, Moments
from advlab.defenses.pni import PNIConv2d, PNILinear
from advlab.defenses.registry import register_defense
from advlab.errors import InputError
from advlab.models.layers import Normalize

ModuleT = TypeVar("ModuleT", bound=nn.Module)
MomentRule = Callable[[Any, Moments, "MomentContext"], Moments]

_MODULE_RULES: dict[type[nn.Module], MomentRule] = {}


def register_moment_rule(module_type: type[ModuleT]) -> Callable[[MomentRule], MomentRule]:
    """Decorator: ``@register_moment_rule(MyBlock)`` on ``fn(module, moments, ctx) -> Moments``.

    ``ctx.propagate(submodule, moments)`` runs a child through its own rule (or trace), so a block rule can be
    written in terms of its layers. A rule also applies to subclasses that do not override ``forward``.
    """

    def decorate(fn: MomentRule) -> MomentRule:
        _MODULE_RULES[module_type] = fn
        return fn

    return decorate


def find_moment_rule(module_type: type[nn.Module]) -> MomentRule | None:
    """The rule for ``module_type``: its own, or an ancestor's when the subclass keeps the ancestor's forward."""
    for klass in module_type.__mro__:
        if klass in _MODULE_RULES:
            if klass is module_type or module_type.forward is klass.forward:
                return _MODULE_RULES[klass]
            return None  # a subclass with its own forward computes something else: do not guess
    return None


@dataclass(frozen=True)
class MomentContext:
    """What a rule may need: the numerical floor, the max-pool order, and recursion into children."""

    network: MomentNetwork
    var_floor: float
    sort_maxpool: bool

    def propagate(self, module: nn.Module, moments: Moments) -> Moments:
        return self.network.propagate(module, moments)


# --------------------------------------------------------------------------------------------------- module rules


@register_moment_rule(nn.Sequential)
def _sequential(module: nn.Sequential, moments: Moments, ctx: MomentContext) -> Moments:
    children = list(module)
    index = 0
    while index < len(children):
        pair = _foldable(children[index], children[index + 1]) if index + 1 < len(children) else None
        if pair is not None:
            moments = mom.conv2d_batchnorm_moments(moments, *pair)
            index += 2
        else:
            moments = ctx.propagate(children[index], moments)
            index += 1
    return moments


def _foldable(first: nn.Module, second: nn.Module) -> tuple[nn.Conv2d, _BatchNorm] | None:
    """``(conv, bn)`` for a plain Conv2d directly followed by a batch-norm with running statistics (fold the BN into
    the conv), else None."""
    if (isinstance(first, nn.Conv2d) and isinstance(second, _BatchNorm)
            and find_moment_rule(type(first)) is _MODULE_RULES[nn.Conv2d]
            and find_moment_rule(type(second)) is _MODULE_RULES[nn.BatchNorm2d]
            and second.running_mean is not None):
        return first, second
    return None


@register_moment_rule(nn.Conv2d)
def _conv2d(module: nn.Conv2d, moments: Moments, ctx: MomentContext) -> Moments:
    return mom.conv2d_moments(moments, module)


@register_moment_rule(nn.Linear)
def _linear(module: nn.Linear, moments: Moments, ctx: MomentContext) -> Moments:
    return mom.linear_moments(moments, module.weight, module.bias)


@register_moment_rule(nn.BatchNorm1d)
@register_moment_rule(nn.BatchNorm2d)
def _batchnorm(module: nn.modules.batchnorm._BatchNorm, moments: Moments, ctx: MomentContext) -> Moments:
    if module.running_mean is None:
        raise InputError(f"{type(module).__name__} has no running statistics (track_running_stats=False), so it is "
                         "not a fixed affine map at test time; use batch-norm with running statistics.")
    return mom.batchnorm_moments(moments, module)


@register_moment_rule(nn.ReLU)
def _relu(module: nn.ReLU, moments: Moments, ctx: MomentContext) -> Moments:
    return mom.relu_moments_fused(*moments, var_floor=ctx.var_floor)


@register_moment_rule(nn.MaxPool2d)
def _max_pool(module: nn.MaxPool2d, moments: Moments, ctx: MomentContext) -> Moments:
    if module.return_indices:
        raise InputError("MaxPool2d(return_indices=True) has no moment rule; use return_indices=False.")
    return mom.max_pool2d_moments(moments, module.kernel_size, module.stride, module.padding, module.dilation,
                                  module.ceil_mode, sort=ctx.sort_maxpool, var_floor=ctx.var_floor)


@register_moment_rule(nn.AvgPool2d)
def _avg_pool(module: nn.AvgPool2d, moments: Moments, ctx: MomentContext) -> Moments:
    return mom.avg_pool2d_moments(moments, module.kernel_size, module.stride, module.padding, module.ceil_mode,
                                  module.count_include_pad, module.divisor_override)


@register_moment_rule(nn.AdaptiveAvgPool2d)
def _adaptive_avg_pool(module: nn.AdaptiveAvgPool2d, moments: Moments, ctx: MomentContext) -> Moments:
    return mom.adaptive_avg_pool2d_moments(moments, module.output_size)


@register_moment_rule(nn.Flatten)
def _flatten(module: nn.Flatten, moments: Moments, ctx: MomentContext) -> Moments:
    return Moments(*(t.flatten(module.start_dim, module.end_dim) for t in moments))


def _identity(module: nn.Module, moments: Moments, ctx: MomentContext) -> Moments:
    return moments


for _passthrough in (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout):
    register_moment_rule(_passthrough)(_identity)  # dropout is the identity at test time


@register_moment_rule(Normalize)
def _normalize(module: Normalize, moments: Moments, ctx: MomentContext) -> Moments:
    std = module.std.reshape((1, -1) + (1,) * (moments.mean.dim() - 2))
    center = module.mean.reshape(std.shape)
    return Moments((moments.mean - center) / std, moments.var / (std * std))


# ------------------------------------------------------------------------------ functions inside traced forwards


def _is_moments(value: Any) -> bool:
    return isinstance(value, Moments)


def _any_moments(value: Any) -> bool:
    """True when a Moments value occurs in ``value`` or in any list/tuple/dict nested in it."""
    if _is_moments(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(_any_moments(v) for v in value)
    if isinstance(value, dict):
        return any(_any_moments(v) for v in value.values())
    return False


def _component(value: Any, index: int) -> Any:
    """``value`` with every nested Moments replaced by its mean (index 0) or variance (index 1)."""
    if _is_moments(value):
        return value[index]
    if isinstance(value, (list, tuple)) and _any_moments(value):
        return type(value)(_component(v, index) for v in value)
    if isinstance(value, dict):
        return {k: _component(v, index) for k, v in value.items()}
    return value


def _on_both(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An op that only moves/selects cells (view, slice, cat, flatten): apply it to the means and the variances."""

    def apply(ctx: MomentContext, *args: Any, **kwargs: Any) -> Moments:
        mean, var = (fn(*_component(args, i), **_component(kwargs, i)) for i in (0, 1))
        return Moments(mean, var)

    return apply


def _pad(ctx: MomentContext, x: Moments, pad: Any, mode: str = "constant", value: float | None = None) -> Moments:
    # Padded cells are deterministic constants: the mean gets the fill value, the variance 0.
    return Moments(F.pad(x.mean, pad, mode, value), F.pad(x.var, pad, mode, 0.0 if mode == "constant" else None))


def _relu_fn(ctx: MomentContext, x: Moments, *args: Any, **kwargs: Any) -> Moments:
    return mom.relu_moments_fused(*x, var_floor=ctx.var_floor)


def _identity_fn(ctx: MomentContext, x: Moments, *args: Any, **kwargs: Any) -> Moments:
    return x


def _broadcast_var(var: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    return var if var.shape == mean.shape else torch.broadcast_to(var, mean.shape)


def _add(ctx: MomentContext, a: Any, b: Any, *, alpha: float = 1) -> Moments:
    if alpha != 1:
        return _add(ctx, a, _mul(ctx, b, alpha))
    if _is_moments(a) and _is_moments(b):
        # Independence approximation (module docstring): the covariance between the two terms is ignored.
        mean = a.mean + b.mean
        return Moments(mean, _broadcast_var(a.var + b.var, mean))
    noisy, constant = (a, b) if _is_moments(a) else (b, a)
    mean = noisy.mean + constant
    return Moments(mean, _broadcast_var(noisy.var, mean))


def _neg(ctx: MomentContext, a: Moments) -> Moments:
    return Moments(-a.mean, a.var)


def _sub(ctx: MomentContext, a: Any, b: Any, *, alpha: float = 1) -> Moments:
    return _add(ctx, a, _neg(ctx, b) if _is_moments(b) else -b, alpha=alpha)


def _mul(ctx: MomentContext, a: Any, b: Any) -> Moments:
    if _is_moments(a) and _is_moments(b):
        raise InputError("the moment network cannot multiply two noisy tensors (the product of Gaussians is not "
                         "modelled); register a moment rule for the module that does it.")
    noisy, constant = (a, b) if _is_moments(a) else (b, a)
    return mom.affine_moments(noisy, constant)


def _div(ctx: MomentContext, a: Any, b: Any, *, rounding_mode: str | None = None) -> Moments:
    if _is_moments(b) or rounding_mode is not None:
        raise InputError("the moment network can only divide a noisy tensor by a constant.")
    return mom.affine_moments(a, 1.0 / b)


def _avg_pool_fn(ctx: MomentContext, x: Moments, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None
                 ) -> Moments:
    return mom.avg_pool2d_moments(x, kernel_size, stride if stride not in (None, []) else None, padding, ceil_mode,
                                  count_include_pad, divisor_override)


def _max_pool_fn(ctx: MomentContext, x: Moments, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Moments:
    if return_indices:
        raise InputError("max_pool2d(return_indices=True) has no moment rule.")
    return mom.max_pool2d_moments(x, kernel_size, stride, padding, dilation, ceil_mode, sort=ctx.sort_maxpool,
                                  var_floor=ctx.var_floor)


def _adaptive_avg_pool_fn(ctx: MomentContext, x: Moments, output_size: Any) -> Moments:
    return mom.adaptive_avg_pool2d_moments(x, output_size)


def _mean_fn(ctx: MomentContext, x: Moments, dim: Any = None, keepdim: bool = False, **kwargs: Any) -> Moments:
    if kwargs.get("dtype") is not None:
        raise InputError("mean(dtype=...) on a noisy tensor is not supported by the moment network.")
    dims = tuple(range(x.mean.dim())) if dim is None else ((dim,) if isinstance(dim, int) else tuple(dim))
    return mom.mean_over_dims_moments(x, dims, keepdim)


def _getattr_fn(ctx: MomentContext, x: Moments, name: str) -> Any:
    if name in ("shape", "dtype", "device", "ndim", "is_cuda"):
        return getattr(x.mean, name)
    raise InputError(f"the moment network does not support reading .{name} of a noisy tensor.")


_FUNCTION_RULES: dict[Any, Callable[..., Any]] = {
    F.relu: _relu_fn, torch.relu: _relu_fn, F.relu_: _relu_fn, torch.relu_: _relu_fn,
    operator.add: _add, operator.iadd: _add, torch.add: _add,
    operator.sub: _sub, operator.isub: _sub, torch.sub: _sub,
    operator.mul: _mul, operator.imul: _mul, torch.mul: _mul,
    operator.truediv: _div, operator.itruediv: _div, torch.div: _div,
    operator.neg: _neg, torch.neg: _neg,
    F.avg_pool2d: _avg_pool_fn, F.max_pool2d: _max_pool_fn, F.adaptive_avg_pool2d: _adaptive_avg_pool_fn,
    torch.mean: _mean_fn,
    F.dropout: _identity_fn, F.dropout1d: _identity_fn, F.dropout2d: _identity_fn, F.dropout3d: _identity_fn,
    F.pad: _pad,
    builtins.getattr: _getattr_fn,
    operator.getitem: _on_both(operator.getitem), torch.flatten: _on_both(torch.flatten),
    torch.reshape: _on_both(torch.reshape), torch.cat: _on_both(torch.cat), torch.concat: _on_both(torch.cat),
    torch.squeeze: _on_both(torch.squeeze), torch.unsqueeze: _on_both(torch.unsqueeze),
    torch.transpose: _on_both(torch.transpose), torch.permute: _on_both(torch.permute),
}


def _method(name: str) -> Callable[..., Any]:
    return _on_both(lambda tensor, *args, **kwargs: getattr(tensor, name)(*args, **kwargs))


_METHOD_RULES: dict[str, Callable[..., Any]] = {
    "relu": _relu_fn, "relu_": _relu_fn, "add": _add, "add_": _add, "sub": _sub, "sub_": _sub, "mul": _mul,
    "mul_": _mul, "div": _div, "div_": _div, "neg": _neg, "mean": _mean_fn,
    "size": lambda ctx, x, *args: x.mean.size(*args), "dim": lambda ctx, x: x.mean.dim(),
    **{name: _method(name) for name in ("view", "reshape", "flatten", "contiguous", "squeeze", "unsqueeze",
                                        "permute", "transpose", "clone", "view_as", "reshape_as")},
}


# ------------------------------------------------------------------------------------------------ the converter


# What symbolic tracing raises on code it cannot follow: control flow on a traced value (TraceError), calls that
# reject a Proxy argument (TypeError/ValueError), missing attributes on proxies, unsupported features.
_TRACE_ERRORS = (torch.fx.proxy.TraceError, TypeError, ValueError, AttributeError, RuntimeError, NotImplementedError)


class _Tracer(torch.fx.Tracer):
    """Stops at every module that has a moment rule; traces through the rest (custom blocks, the model)."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return find_moment_rule(type(module)) is not None or super().is_leaf_module(module, qualified_name)


@dataclass(frozen=True)
class _TracedModule:
    """A traced module's graph, plus the conv -> batch-norm pairs that are folded into one conv when run."""

    module: weakref.ref[nn.Module]
    graph: torch.fx.Graph
    conv_bn: dict[torch.fx.Node, tuple[nn.Conv2d, _BatchNorm]]
    folded_bn: frozenset[torch.fx.Node]


def _target_name(node: torch.fx.Node) -> str:
    """The qualified name a ``call_module`` / ``get_attr`` / ``call_method`` node targets."""
    if not isinstance(node.target, str):
        raise TypeError(f"fx node {node.name} ({node.op}) targets {node.target!r}, not a name")
    return node.target


def _conv_bn_pairs(root: nn.Module, graph: torch.fx.Graph
                   ) -> tuple[dict[torch.fx.Node, tuple[nn.Conv2d, _BatchNorm]], frozenset[torch.fx.Node]]:
    """conv nodes whose only use is a batch-norm module (-> that (conv, BN) pair), and those BN nodes.

    Folding saves two full-size elementwise passes per BN; the conv output must have no other user, since the
    fold never materializes it.
    """
    conv_bn: dict[torch.fx.Node, tuple[nn.Conv2d, _BatchNorm]] = {}
    for node in graph.nodes:
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        source = node.args[0]
        if (isinstance(source, torch.fx.Node) and source.op == "call_module" and len(source.users) == 1
                and len(source.args) == 1 and not source.kwargs):
            pair = _foldable(root.get_submodule(_target_name(source)), root.get_submodule(_target_name(node)))
            if pair is not None:
                conv_bn[source] = pair
    folded = frozenset(next(iter(conv.users)) for conv in conv_bn)
    return conv_bn, folded


def _where(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, (_, module_type) = list(stack.items())[-1]
        name = module_type.__name__ if isinstance(module_type, type) else str(module_type)
        return f" (inside {name} at {path!r})"
    return ""


class MomentNetwork(nn.Module):
    """A trained classifier turned into its stochastic feedforward version (Jin, Dundar, Culurciello 2015).

    Args:
        model: the trained classifier ([0, 1] images -> logits). Shared, not copied: later weight changes show.
        input_variance: σ_N² of the independent Gaussian noise on each input pixel, in [0, 1] pixel units (>= 0).
        sort_maxpool: fold each max-pool window in ascending order of the means (paper; default) or raster order.
        var_floor: floor on variances under square roots (default 1e-12, i.e. σ >= 1e-6; the paper's ε is 1e-20).

    ``forward(x)`` returns the **output means** (N, num_classes) as logits, differentiable with respect to x;
    :meth:`forward_moments` returns (mean, variance). Shapes: x (N, C, H, W) float in [0, 1].
    Batch-norm uses running statistics and dropout is off whatever the mode (a test-time network).

    Example::

        robust = MomentNetwork(model, input_variance=0.01)
        logits = robust(x)                              # attack it like any model
    """

    stochastic: ClassVar[bool] = False

    def __init__(self, model: nn.Module, input_variance: float, *, sort_maxpool: bool = True,
                 var_floor: float = DEFAULT_VAR_FLOOR) -> None:
        super().__init__()
        if not isinstance(input_variance, (int, float)) or math.isnan(input_variance) or input_variance < 0:
            raise InputError(f"input_variance is σ_N² in [0, 1] pixel units and must be a number >= 0, "
                             f"got {input_variance!r}")
        if not var_floor > 0:
            raise InputError(f"var_floor must be > 0, got {var_floor!r}")
        self.model = model
        self.input_variance = float(input_variance)
        self.sort_maxpool, self.var_floor = bool(sort_maxpool), float(var_floor)
        # Traced graphs keyed by id(module), with a weak reference to check the id still names that module (after
        # a deepcopy the copy's modules have new ids and are traced again on first use).
        self._graphs: dict[int, _TracedModule] = {}
        self._prepare(model, "model")

    def _prepare(self, module: nn.Module, path: str) -> None:
        """Check every module has a rule or can be traced; trace the latter once (errors at build time)."""
        if isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                self._prepare(child, f"{path}.{name}")
            return
        if find_moment_rule(type(module)) is not None:
            return
        if _Tracer().is_leaf_module(module, ""):
            supported = ", ".join(sorted(k.__name__ for k in _MODULE_RULES))
            raise InputError(f"the moment network has no rule for module type {type(module).__name__} (at "
                             f"{path!r}). Supported: {supported}. Register one with "
                             f"@register_moment_rule({type(module).__name__}) or choose another model.")
        try:
            graph = _Tracer().trace(module)
        except _TRACE_ERRORS as error:
            raise InputError(f"could not trace {type(module).__name__} (at {path!r}) to build its moment network: "
                             f"{error}. Register a rule with @register_moment_rule({type(module).__name__}).") from None
        self._graphs[id(module)] = _TracedModule(weakref.ref(module), graph, *_conv_bn_pairs(module, graph))
        for node in graph.nodes:
            if node.op == "call_module":
                self._prepare(module.get_submodule(node.target), f"{path}.{node.target}")

    def propagate(self, module: nn.Module, moments: Moments) -> Moments:
        """Moments of ``module``'s output for input moments: its rule, or its traced graph interpreted."""
        rule = find_moment_rule(type(module))
        if rule is not None:
            return rule(module, moments, self._context())
        cached = self._graphs.get(id(module))
        if cached is None or cached.module() is not module:  # reached only through a custom rule, or a copy
            self._prepare(module, type(module).__name__)
            cached = self._graphs[id(module)]
        return self._interpret(module, cached, moments)

    def _context(self) -> MomentContext:
        return MomentContext(self, self.var_floor, self.sort_maxpool)

    def _interpret(self, root: nn.Module, traced: _TracedModule, moments: Moments) -> Moments:
        ctx = self._context()
        env: dict[torch.fx.Node, Any] = {}
        first_input = True
        for node in traced.graph.nodes:
            args = torch.fx.node.map_arg(node.args, env.__getitem__)
            kwargs = torch.fx.node.map_arg(node.kwargs, env.__getitem__)
            if node.op == "placeholder":
                env[node] = moments if first_input else (args[0] if args else None)
                first_input = False
            elif node.op == "get_attr":
                value: Any = root
                for part in node.target.split("."):
                    value = getattr(value, part)
                env[node] = value
            elif node.op == "call_module":
                submodule = root.get_submodule(node.target)
                if _any_moments((args, kwargs)):
                    if len(args) != 1 or kwargs or not _is_moments(args[0]):
                        raise InputError(f"module {type(submodule).__name__} at {node.target!r} takes several "
                                         "inputs; the moment network supports one noisy input per module.")
                    if node in traced.folded_bn:  # already applied by the conv before it
                        env[node] = args[0]
                    elif node in traced.conv_bn:
                        env[node] = mom.conv2d_batchnorm_moments(args[0], *traced.conv_bn[node])
                    else:
                        env[node] = self.propagate(submodule, args[0])
                else:
                    env[node] = submodule(*args, **kwargs)
            elif node.op in ("call_function", "call_method"):
                env[node] = self._call(node, args, kwargs, ctx)
            elif node.op == "output":
                return args[0]
        raise InputError(f"the traced graph of {type(root).__name__} has no output")

    @staticmethod
    def _call(node: torch.fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any], ctx: MomentContext) -> Any:
        function = node.target if node.op == "call_function" else None
        if not _any_moments((args, kwargs)):
            if callable(function):
                return function(*args, **kwargs)
            return getattr(args[0], _target_name(node))(*args[1:], **kwargs)
        if function is not None:
            rule = _FUNCTION_RULES.get(function)
            name = getattr(function, "__name__", str(function))
        else:
            rule = _METHOD_RULES.get(_target_name(node))
            name = f"Tensor.{node.target}"
        if rule is None:
            raise InputError(f"the moment network has no rule for {name}{_where(node)} applied to a noisy tensor. "
                             f"Register a moment rule for the module that calls it with @register_moment_rule.")
        return rule(ctx, *args, **kwargs)

    def forward_moments(self, x: torch.Tensor) -> Moments:
        """(mean, variance) of the logits, each (N, num_classes), for inputs x ~ N(x, σ_N² I)."""
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise InputError("the moment network takes float images in [0, 1], shape (N, C, H, W)")
        result = self.propagate(self.model, Moments(x, torch.full_like(x, self.input_variance)))
        if not _is_moments(result):
            raise InputError(f"{type(self.model).__name__} does not return one tensor of logits")
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_moments(x).mean

    def extra_repr(self) -> str:
        return f"input_variance={self.input_variance}, sort_maxpool={self.sort_maxpool}"


def to_moment_network(model: nn.Module, input_variance: float, **kwargs: Any) -> MomentNetwork:
    """Shorthand for :class:`MomentNetwork` ``(model, input_variance, **kwargs)``."""
    return MomentNetwork(model, input_variance, **kwargs)


class ProbabilityEnsemble(nn.Module):
    """The paper's 1:1 ensemble of the stochastic and the standard network, as valid logits.

    ``forward(x) = log(½·softmax(standard(x)) + ½·softmax(moments(x)))`` (N, num_classes), computed stably with
    logsumexp. DESIGN.md warns against averaging probabilities inside ``forward`` because attacks and checks
    expect logits; the **log** of the averaged probabilities is a proper log-probability vector, so softmax/CE of
    it is the ensemble's probability/loss, argmax is the ensemble's vote and margin (C&W) losses stay meaningful
    (they saturate only as the ensemble becomes certain). Deterministic and differentiable.

    Example::

        ensemble = ProbabilityEnsemble(MomentNetwork(model, input_variance=0.01))
    """

    stochastic: ClassVar[bool] = False

    def __init__(self, moment_network: MomentNetwork) -> None:
        super().__init__()
        self.moment_network = moment_network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ensemble_log_probabilities(self.moment_network.model(x), self.moment_network(x))


def ensemble_log_probabilities(standard_logits: torch.Tensor, stochastic_logits: torch.Tensor) -> torch.Tensor:
    """log(½·softmax(standard) + ½·softmax(stochastic)), (N, classes) -> (N, classes): the paper's 1:1 ensemble
    (App. D, Fig. 4) from the two networks' logits, e.g. logits computed once and reused for several variances."""
    standard = F.log_softmax(standard_logits, dim=-1)
    smoothed = F.log_softmax(stochastic_logits, dim=-1)
    return torch.logsumexp(torch.stack((standard, smoothed)), dim=0) - math.log(2.0)


@register_defense("stochastic", stochastic=False, alias_of="stochastic_feedforward",
                  paper="Jin, Dundar, Culurciello 2015 (arXiv:1511.06306)",
                  summary="short name of stochastic_feedforward (cards record that name)")
@register_defense("stochastic_feedforward", stochastic=False, paper="Jin, Dundar, Culurciello 2015 (arXiv:1511.06306)",
                  summary="propagates input-noise means and variances through the trained network (deterministic)")
@dataclass(frozen=True, kw_only=True)
class MomentPropagationTransform(TransformBase):
    """The ``stochastic_feedforward`` defense as a model transform: ``apply(model)`` builds the moment network.

    Args: input_variance: σ_N² in [0, 1] pixel units; ensemble: wrap in :class:`ProbabilityEnsemble` with the
    standard network (paper's 1:1 ensemble); sort_maxpool, var_floor: see :class:`MomentNetwork` (the paper's
    ε is 1e-20, App. C.2).
    """

    name: ClassVar[str] = "stochastic_feedforward"
    stochastic: ClassVar[bool] = False

    input_variance: float = 0.01
    ensemble: bool = False
    sort_maxpool: bool = True
    var_floor: float = DEFAULT_VAR_FLOOR

    def __post_init__(self) -> None:
        if not isinstance(self.input_variance, (int, float)) or not self.input_variance >= 0:
            raise InputError(f"input_variance must be a number >= 0 in [0, 1] pixel units, got {self.input_variance!r}")
        if not isinstance(self.var_floor, (int, float)) or not self.var_floor > 0:
            raise InputError(f"var_floor must be a number > 0, got {self.var_floor!r}")

    def apply(self, model: nn.Module) -> nn.Module:
        network = MomentNetwork(model, self.input_variance, sort_maxpool=self.sort_maxpool, var_floor=self.var_floor)
        return ProbabilityEnsemble(network) if self.ensemble else network

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "input_variance": self.input_variance, "ensemble": self.ensemble,
                "sort_maxpool": self.sort_maxpool, "var_floor": self.var_floor}


# PNI layers (advlab.defenses.pni) are deterministic convs/linears once their noise is off; with noise on, their
# extra weight/activation noise is not part of this model of the input noise, so refuse instead of ignoring it.
def _pni_layer(module: nn.Module, moments: Moments, ctx: MomentContext) -> Moments:
    if module.pni_enabled:
        raise InputError(f"{type(module).__name__} has PNI noise switched on; the moment network models input "
                         "noise only. Call set_pni_enabled(model, False) before converting.")
    base = _conv2d if isinstance(module, nn.Conv2d) else _linear
    return base(module, moments, ctx)


register_moment_rule(PNIConv2d)(_pni_layer)
register_moment_rule(PNILinear)(_pni_layer)
