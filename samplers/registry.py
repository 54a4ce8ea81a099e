"""One registry for what zeta_eval picks by short name: samplers, metrics, model families and benchmarks.

Each library owns one instance: ``samplers.SAMPLERS``, ``metrics.METRICS``, ``datamodules.BENCHMARKS`` and
``zeta_eval.adapters.ADAPTERS``. An entry is a class (for benchmarks an object) or a lazy ``"module:attr"`` string
imported on first use, so that listing the names imports nothing. Other packages add entries through Python entry
points, without editing this project::

    # the plugin's pyproject.toml
    [project.entry-points."zeta_eval.samplers"]
    cfg_low = "my_package.samplers:LowCFG"

The rules: a name is registered once (a second, different entry is an error naming both); an entry is a subclass
(for benchmarks an instance) of the registry's base; and its own ``name`` is the name it is registered under, since
that name goes into sample ids, row columns and file names. Every error is one line (a :class:`RegistryError`, a
ValueError); a plugin that cannot be imported is named in it, and nothing is imported before an entry is used.

Standard library only: every library of the project may import this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """A wrong entry: a name registered twice, a wrong base class or name, a plugin that cannot be imported."""


class UnknownNameError(RegistryError, KeyError):
    """A name that is not registered; the message lists the known names. A KeyError too, so ``registry.get``
    works as for any mapping."""

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T]):
    """Short name -> class (or object), with lazy ``"module:attr"`` entries and entry-point plugins.

    Args:
        kind: what the entries are, for messages (``"sampler"``, ``"model family"``).
        base: every entry is a subclass of it (an instance of it with ``instances=True``, e.g. benchmarks).
        entries: the built-in entries, ``{name: class | object | "module:attr"}``.
        group: the entry-point group plugins register in (``"zeta_eval.samplers"``); read on first use.
        name_attr: the attribute that holds an entry's own name (``None``: not checked).
        plural: ``kind`` in the plural (default ``kind + "s"``).
        unknown_error: the exception class for an unknown name (a subclass of :class:`UnknownNameError`).
    """

    def __init__(self, kind: str, base: type, entries: Mapping[str, Any] | None = None, *, group: str | None = None,
                 name_attr: str | None = "name", instances: bool = False, plural: str | None = None,
                 unknown_error: type[UnknownNameError] = UnknownNameError) -> None:
        self.kind, self.plural = kind, plural or f"{kind}s"
        self.base, self.instances, self.name_attr = base, instances, name_attr
        self.group = group
        self.unknown_error = unknown_error
        self._entries: dict[str, Any] = {}  # name -> a loaded entry or its "module:attr" path
        self._origins: dict[str, str] = {}  # name -> where the entry comes from, for messages
        self._plugins_read = group is None
        for name, target in (entries or {}).items():
            self.add(name, target)

    # ------------------------------------------------------------------------------------------ registration
    def add(self, name: str, target: Any, origin: str = "") -> None:
        """Register ``target`` (a class, an object or a lazy ``"module:attr"``) as ``name``.

        Registering the same entry twice is allowed (also a class whose lazy path is already there); a different
        entry under a taken name is a :class:`RegistryError`."""
        if not isinstance(name, str) or not name.isidentifier():
            raise RegistryError(f"{self.kind} name {name!r}{_from(origin)} must be an identifier (letters, digits, _)")
        if isinstance(target, str):
            _split_path(target, f"{self.kind} {name!r}{_from(origin)}")
        else:
            self._check(name, target, origin)
        if name in self._entries:
            old = self._entries[name]
            if _same(old, target):
                if not isinstance(target, str):
                    self._entries[name] = target  # a lazy entry, now loaded
                return
            raise RegistryError(f"{self.kind} name {name!r} registered twice: {_path_of(old)}"
                                f"{_from(self._origins[name])} and {_path_of(target)}{_from(origin)}")
        self._entries[name] = target
        self._origins[name] = origin

    def register(self, target: T) -> T:
        """Class decorator: register ``target`` under its own name (``target.name``)."""
        if self.name_attr is None or not getattr(target, self.name_attr, None):
            raise RegistryError(f"{_path_of(target)} has no {self.name_attr or 'name'} to register it by")
        self.add(getattr(target, self.name_attr), target)
        return target

    def _read_plugins(self) -> None:
        """Add the entry points of :attr:`group` (their modules are imported only when an entry is used)."""
        if self._plugins_read:
            return
        for ep in metadata.entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            origin = f"plugin {dist.name} {dist.version}" if dist is not None else f"plugin entry point {ep.name}"
            self.add(ep.name, ep.value.split("[")[0].strip(), f"{origin}, entry point group {self.group}")
        self._plugins_read = True

    # ------------------------------------------------------------------------------------------ lookup
    def __getitem__(self, name: str) -> T:
        self._read_plugins()
        if name not in self._entries:
            raise self.unknown(name)
        target = self._entries[name]
        if isinstance(target, str):
            target = self._load(name, target)
            self._entries[name] = target
        return target

    def __contains__(self, name: object) -> bool:
        self._read_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._read_plugins()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._read_plugins()
        return len(self._entries)

    def names(self) -> list[str]:
        """Every registered name, sorted, without importing any entry."""
        return sorted(self)

    def class_path(self, name: str) -> str:
        """The ``module.Class`` import path of entry ``name`` (for LightningCLI's ``class_path``); the entry is
        imported, so that a broken plugin is reported here, in one line."""
        target = self[name]
        return f"{target.__module__}.{target.__qualname__}"

    def unknown(self, name: str) -> UnknownNameError:
        """The error for a name that is not registered, listing the known ones."""
        return self.unknown_error(f"unknown {self.kind} {name!r}; known {self.plural}: "
                                  f"{', '.join(self.names()) or 'none registered'}")

    # ------------------------------------------------------------------------------------------ checks
    def _load(self, name: str, path: str) -> Any:
        module_name, attrs = _split_path(path, f"{self.kind} {name!r}")
        where = f"{self.kind} {name!r} = {path}{_from(self._origins[name])}"
        try:
            target: Any = importlib.import_module(module_name)
            for attr in attrs:
                target = getattr(target, attr)
        except Exception as err:  # any import-time failure of a plugin: say which plugin, in one line
            first_line = (str(err).strip().splitlines() or [""])[0]
            raise RegistryError(f"{where} cannot be loaded: {type(err).__name__}: {first_line}") from err
        self._check(name, target, self._origins[name])
        return target

    def _check(self, name: str, target: Any, origin: str) -> None:
        where = f"{self.kind} {name!r}{_from(origin)}"
        base = f"{self.base.__module__}.{self.base.__qualname__}"
        if self.instances:
            if not isinstance(target, self.base):
                raise RegistryError(f"{where} is {_path_of(target)}, not a {base}")
        elif not (isinstance(target, type) and issubclass(target, self.base)):
            raise RegistryError(f"{where} is {_path_of(target)}, not a subclass of {base}")
        if self.name_attr is not None and getattr(target, self.name_attr, None) != name:
            raise RegistryError(f"{where} is {_path_of(target)}, whose {self.name_attr} is "
                                f"{getattr(target, self.name_attr, None)!r}: set {self.name_attr} = {name!r} (the "
                                "name goes into sample ids and result columns)")


def _same(old: Any, new: Any) -> bool:
    """The same entry: equal objects, or a lazy path and the class (or path) it names."""
    if isinstance(old, str) or isinstance(new, str):
        return _path_of(old) == _path_of(new)
    return old is new or old == new


def _from(origin: str) -> str:
    return f" (from {origin})" if origin else ""


def _split_path(path: str, what: str) -> tuple[str, list[str]]:
    """``"pkg.module:Class.attr"`` -> (``"pkg.module"``, ``["Class", "attr"]``)."""
    module_name, sep, attrs = path.partition(":")
    if not sep or not module_name or not attrs:
        raise RegistryError(f"{what} = {path!r} must be written 'package.module:Name'")
    return module_name.strip(), attrs.strip().split(".")


def _path_of(target: Any) -> str:
    """A lazy entry's path as written, or ``"module:qualname"`` of a class (the repr of other objects)."""
    if isinstance(target, str):
        return target
    if isinstance(target, type):
        return f"{target.__module__}:{target.__qualname__}"
    return repr(target)
