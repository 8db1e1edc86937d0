"""Plain data classes for the CLI's hot path, without the `dataclasses` module.

`jobrunner submit` has a 60 ms budget. Importing `dataclasses` (it pulls in `inspect`,
`ast`, `dis`, `tokenize`) and building a dozen slotted dataclasses cost ~14 ms of it.
`Record` gives the same declarative form: an `__init__` generated once per class from
its annotations and defaults, `__repr__` and `__eq__`. Type checkers see it as a
dataclass through `dataclass_transform`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_: object):  # noqa: ANN202 - a no-op at run time
        return lambda cls: cls


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A default made fresh for each instance (a list, a dict)."""
    return _Factory(default_factory)  # type: ignore[return-value]


_MISSING = object()


@dataclass_transform(field_specifiers=(field,))
class Record:
    __fields__: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = [
            name
            for name, kind in cls.__dict__.get("__annotations__", {}).items()
            if not name.startswith("_") and "ClassVar" not in str(kind)
        ]
        fields = tuple(dict.fromkeys((*cls.__fields__, *own)))
        params, body = [], []
        env: dict[str, Any] = {"_MISSING": _MISSING}
        for name in fields:
            default = getattr(cls, name, _MISSING)
            if isinstance(default, _Factory):
                env[f"_f_{name}"] = default.make
                params.append(f"{name}=_MISSING")
                body.append(f"self.{name} = _f_{name}() if {name} is _MISSING else {name}")
                setattr(cls, name, None)  # never share the factory object itself
            elif default is _MISSING:
                if any("=" in p for p in params):
                    raise TypeError(
                        f"{cls.__name__}.{name}: a field without a default "
                        "follows one with a default"
                    )
                params.append(name)
                body.append(f"self.{name} = {name}")
            else:
                env[f"_d_{name}"] = default
                params.append(f"{name}=_d_{name}")
                body.append(f"self.{name} = {name}")
        source = f"def __init__(self, {', '.join(params)}):\n    " + ("\n    ".join(body) or "pass")
        exec(source, env)  # noqa: S102 - generated from the class's own field names
        init = env["__init__"]
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = init  # type: ignore[method-assign]
        cls.__fields__ = fields

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__fields__)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__fields__)

    __hash__ = None  # type: ignore[assignment]


def asdict(value: Any) -> Any:
    """Records, lists and dicts as plain JSON-ready values."""
    if isinstance(value, Record):
        return {n: asdict(getattr(value, n)) for n in value.__fields__}
    if isinstance(value, list | tuple):
        return [asdict(v) for v in value]
    if isinstance(value, dict):
        return {k: asdict(v) for k, v in value.items()}
    return value
