"""Batch norm folded into the convolution before it, for an attack's own forward and backward passes.

In eval mode ``BatchNorm2d`` is the affine map ``y = γ·(x − μ)/√(σ² + ε) + β`` per channel, so a convolution
followed by it is one convolution with weights ``W·s`` and bias ``(b − μ)·s + β``, ``s = γ/√(σ² + ε)`` (Ioffe &
Szegedy 2015, §3.1: at inference "the normalization is a linear transform"; every deployment toolchain fuses it).
The folded network computes the same function, so its input gradients are the attack's gradients up to rounding,
and each step skips one memory-bound pass per layer forward and one backward: on a CPU where the convolutions
run in bf16 (AMX), those elementwise passes are a large share of a step.

What is folded, and when (anything else: the model is returned as it is):

* a model holding at least one exact ``nn.BatchNorm2d`` in eval mode that ``torch.fx`` can trace (data-dependent
  control flow cannot be traced: such models are left alone);
* pairs ``nn.Conv2d -> nn.BatchNorm2d`` (exact types) where the convolution's output feeds nothing but that BN and
  each module is called once; and pairs whose convolution offers ``folded_with(bn)`` (the folding protocol: PNI's
  noisy convolutions return one noisy convolution, drawing the same noise; such modules are not traced into);
* and only when the folded copy's logits match the model's on the attacked images (fp32, relative 1e-4, both
  passes from the same random seed, so a randomized model must draw the same noise in the same order): the check
  that a traced graph froze no Python-side state of the model and consumes its random stream as the model does.

The folded copy is cached per model and rebuilt when any parameter or buffer changes (their ``_version``
counters move on every in-place update, e.g. an optimizer step in adversarial training) or a module's mode does;
and since a write through ``.data`` (or a switch such as PNI's noise on/off) moves no counter, a cached copy is used
only after its logits have matched the model's again on the images about to be attacked (a few images, fp32). The
user's model is never modified: the copy is made from a deep copy.
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Hashable
from itertools import chain
from typing import Any

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

LOG = logging.getLogger(__name__)
# Folded logits may differ from the model's by rounding only: max |a − b| <= MATCH_RTOL · (1 + max |a|).
MATCH_RTOL = 1e-4
PROBE_IMAGES = 4  # images on which a folded copy proves itself
PROBE_SEED = 1234  # both probe passes draw their noise from this seed (the attack's own stream is forked away)

# model -> (fingerprint, folded copy or None when the model cannot or need not be folded)
_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[Hashable, nn.Module | None]] = weakref.WeakKeyDictionary()


def fold_batch_norm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """``model``, or a cached copy of it in which every foldable ``Conv2d -> BatchNorm2d`` pair is one convolution.

    Args:
        model: the network as the attack receives it, already in eval mode (inside ``frozen_eval``).
        x: the images about to be attacked (N, C, H, W) in [0, 1]; the first few check the copy.

    Returns the copy (eval mode, parameters frozen) or ``model`` itself when nothing may be folded.
    """
    if not _has_eval_batch_norm(model):
        return model
    probe = x[:PROBE_IMAGES]
    fingerprint = _fingerprint(model)
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == fingerprint:
        if cached[1] is None:
            return model
        if _same_logits(model, cached[1], probe):
            return cached[1]
    folded = _folded_copy(model)
    if folded is not None and not _same_logits(model, folded, probe):
        LOG.debug("folded copy of %s disagrees with the model: attacking the model itself", type(model).__name__)
        folded = None
    _CACHE[model] = (fingerprint, folded)
    return folded if folded is not None else model


def _has_eval_batch_norm(model: nn.Module) -> bool:
    return any(type(module) is nn.BatchNorm2d and not module.training and module.track_running_stats
               for module in model.modules())


def _fingerprint(model: nn.Module) -> Hashable:
    """Identity and in-place version of every parameter and buffer, and every module's mode."""
    tensors = tuple((t.data_ptr(), t._version, t.device.type) for t in chain(model.parameters(), model.buffers()))
    return tensors, tuple(module.training for module in model.modules())


class _Tracer(fx.Tracer):
    """fx's tracer, with every module that offers ``folded_with`` kept whole (its forward may branch on state)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return callable(getattr(m, "folded_with", None)) or super().is_leaf_module(m, module_qualified_name)


def _folded_copy(model: nn.Module) -> nn.Module | None:
    """A traced deep copy with the foldable pairs folded, or None when it cannot be traced or nothing folds."""
    try:
        root = copy.deepcopy(model)
        graph_module = fx.GraphModule(root, _Tracer().trace(root), type(model).__name__)
    except Exception as exc:  # any failure to copy or trace means only that this model is attacked unfolded
        LOG.debug("cannot trace %s for batch-norm folding: %s", type(model).__name__, exc)
        return None
    modules = dict(graph_module.named_modules())
    calls: dict[str, int] = {}
    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folded = 0
    for node in list(graph_module.graph.nodes):
        conv_node = node.args[0] if node.op == "call_module" and node.args else None
        if not (isinstance(conv_node, fx.Node) and conv_node.op == "call_module"
                and _pair(modules, calls, conv_node, node)):
            continue
        replacement = _fold(modules[str(conv_node.target)], modules[str(node.target)])
        if replacement is None:
            continue
        _replace_module(graph_module, str(conv_node.target), replacement)
        node.replace_all_uses_with(conv_node)
        graph_module.graph.erase_node(node)
        folded += 1
    if not folded:
        return None
    graph_module.graph.lint()
    graph_module.recompile()
    graph_module.delete_all_unused_submodules()
    for param in graph_module.parameters():
        param.requires_grad_(False)
    return graph_module.eval()


def _pair(modules: dict[str, nn.Module], calls: dict[str, int], conv_node: fx.Node, bn_node: fx.Node) -> bool:
    """A convolution feeding only an eval-mode BN with running statistics, each called once."""
    conv, bn = modules.get(str(conv_node.target)), modules.get(str(bn_node.target))
    foldable_conv = type(conv) is nn.Conv2d or callable(getattr(conv, "folded_with", None))
    return (foldable_conv and type(bn) is nn.BatchNorm2d and not bn.training and bn.track_running_stats
            and bn.running_mean is not None and bn.running_var is not None
            and len(conv_node.users) == 1 and len(bn_node.args) == 1 and not bn_node.kwargs
            and calls[str(conv_node.target)] == 1 and calls[str(bn_node.target)] == 1)


def _fold(conv: Any, bn: Any) -> nn.Module | None:
    if type(conv) is nn.Conv2d:
        return fuse_conv_bn_eval(conv, bn)
    return conv.folded_with(bn)  # the folding protocol (see the module docstring); None: keep the pair


def _replace_module(root: nn.Module, qualified_name: str, module: nn.Module) -> None:
    parent_name, _, name = qualified_name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, name, module)


def _same_logits(model: nn.Module, folded: nn.Module, x: torch.Tensor) -> bool:
    """Both networks' fp32 logits on ``x``, each pass from the same seed, agree up to rounding.

    A model that cannot take ``x`` at all (images of another shape) is not folded: the attack's own first contact
    with it then reports that as the clear error it is (:func:`advlab.attacks.base.probe_logits`).
    """
    devices = [x.device] if x.device.type == "cuda" else []
    outputs = []
    for network in (model, folded):
        with torch.random.fork_rng(devices=devices), torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            torch.manual_seed(PROBE_SEED)
            try:
                outputs.append(network(x).float())
            except RuntimeError:
                return False
    expected, got = outputs
    if expected.shape != got.shape:
        return False
    return bool((expected - got).abs().max() <= MATCH_RTOL * (1 + expected.abs().max()))
