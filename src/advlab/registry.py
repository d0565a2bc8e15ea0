"""One small generic registry for models, attacks, defenses and datasets.

The CLI, presets and tests enumerate the same registries, so a name that works in one place works everywhere
(DESIGN.md §3.6). Factories are registered with a decorator; nothing is dispatched by string if/elif or eval.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any, Generic, TypeVar

from advlab.errors import InputError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered factory and free-form metadata about what it builds (e.g. input shape, paper)."""

    name: str
    factory: Callable[..., T]
    info: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A name -> factory map with a decorator to fill it and helpful errors for typos."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **info: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@MODELS.register("resnet20", dataset="cifar10")`` on a factory function or class."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, factory, dict(info))
            return factory

        return decorate

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            hint = get_close_matches(name, list(self._entries), n=1)
            suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{suggestion} Known: {', '.join(self.names())}."
            ) from None

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the object registered as ``name`` with keyword arguments.

        A setting the factory does not take is an :class:`InputError` listing the ones it does (a typo in
        ``--model-arg`` or a card must not surface as a bare TypeError).
        """
        factory = self.entry(name).factory
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):  # some builtins have no signature; let the call itself decide
            signature = None
        if signature is not None:
            try:
                signature.bind(**kwargs)
            except TypeError as exc:
                known = [p.name for p in signature.parameters.values()
                         if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
                raise InputError(f"{self.kind} {name!r} cannot take settings {sorted(kwargs)} ({exc}); its "
                                 f"settings are: {', '.join(known) or 'none'}") from None
        return factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._entries)
