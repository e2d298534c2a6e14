"""The base of the package's immutable value types: ``__slots__`` and a guarded setter.

A frozen dataclass costs the ``dataclasses`` module (with ``inspect``, ``ast`` and ``dis``)
plus code generated and compiled per class at import: most of what ``import
requests_oauthcc`` added to ``import requests``. A :class:`Frozen` subclass declares its
fields ``Final`` (so ``mypy`` refuses an assignment, as it does to a frozen dataclass),
sets each once in its ``__init__``, and names them once; this base gives what the dataclass
did: ``dataclasses.FrozenInstanceError`` (an ``AttributeError``) on any later assignment,
equality and hashing on the compared fields, a ``repr`` of the shown ones,
:meth:`~Frozen.replace`, copying and pickling through the constructor.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

__all__ = ["Frozen"]

_F = TypeVar("_F", bound="Frozen")


class Frozen:
    """Immutable, slotted, typed value. Subclasses declare ``__slots__``, their fields as
    ``Final`` annotations, an ``__init__`` setting each slot once, and:

    ``_fields``: the constructor's parameters, in order (what :meth:`replace`, ``copy`` and
    ``pickle`` pass back to it; each is also an attribute).
    ``_compared``: the fields equality and ``hash`` use (default: ``_fields``).
    ``_shown``: the fields ``repr`` shows (secrets never are).
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _compared: ClassVar[tuple[str, ...] | None] = None
    _shown: ClassVar[tuple[str, ...]] = ()

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, name):  # set already (by __init__), or a class attribute
            raise _frozen(self, name)
        object.__setattr__(self, name, value)  # a slot set once; anything else refused

    def __delattr__(self, name: str) -> None:
        raise _frozen(self, name)

    def _key(self) -> tuple[Any, ...]:
        compared = self._fields if self._compared is None else self._compared
        return tuple([getattr(self, name) for name in compared])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Frozen)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._shown)
        return f"{type(self).__qualname__}({shown})"

    def replace(self: _F, **changes: Any) -> _F:
        """A copy with ``changes`` (constructor parameters) applied, checked as a new one is.

        What ``dataclasses.replace`` did for these types when they were dataclasses.
        """
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)

    __replace__ = replace  # copy.replace() (Python 3.13)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), {name: getattr(self, name) for name in self._fields}))


def _rebuild(cls: type[_F], values: dict[str, Any]) -> _F:
    """A pickled or copied :class:`Frozen` value, built again by its constructor."""
    return cls(**values)


def _frozen(value: Frozen, name: str) -> AttributeError:
    from dataclasses import FrozenInstanceError  # only a mistake gets here

    return FrozenInstanceError(f"cannot assign to field {name!r} of {type(value).__name__}")
