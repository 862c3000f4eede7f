"""The checks a grading knows: the built-in ones (every module of the `checks` package) and those of installed
plugins (entry points of the group `redis_grader.checks`), collected from their modules, never filled in by
import side effects. A test builds its own Registry with just the checks it needs."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import entry_points
from types import ModuleType

from grader.checking import Check, CheckFunction, declared_check
from grader.errors import GraderError

PLUGIN_GROUP = "redis_grader.checks"


class RegistryError(GraderError):
    """Checks that cannot work together: two with one id, or one that requires a check nobody declares."""


class Registry(Mapping[str, Check]):
    """Check ids to their declarations, in the order they were added."""

    def __init__(self, checks: Iterable[Check | CheckFunction] = ()) -> None:
        self._checks: dict[str, Check] = {}
        for item in checks:
            self.add(item)

    def add(self, item: Check | CheckFunction) -> Check:
        """Add a Check, or a function decorated with @check. Adding the same declaration again changes nothing;
        another declaration with a known id is an error."""
        found = declared_check(item)
        if found is None:
            raise TypeError(f"{item!r} is neither a Check nor a function decorated with @check")
        known = self._checks.get(found.id)
        if known is not None and known is not found:
            raise RegistryError(f"two checks are declared with the id '{found.id}' "
                                f"({_origin(known)} and {_origin(found)})")
        self._checks[found.id] = found
        return found

    def add_module(self, module: ModuleType) -> list[Check]:
        """Every check a module declares at its top level; for a package, those of each of its modules too."""
        added = [self.add(value) for value in vars(module).values() if declared_check(value) is not None]
        if hasattr(module, "__path__"):
            for info in pkgutil.iter_modules(module.__path__, prefix=f"{module.__name__}."):
                added.extend(self.add_module(importlib.import_module(info.name)))
        return added

    def get(self, check_id: str, default: Check | None = None) -> Check | None:  # type: ignore[override]
        return self._checks.get(check_id, default)

    def validate(self) -> Registry:
        """Every `requires` names a known check, or a RegistryError names both."""
        for declared in self._checks.values():
            for needed in declared.requires:
                if needed not in self._checks:
                    raise RegistryError(f"check '{declared.id}' ({_origin(declared)}) requires '{needed}', "
                                        "which no built-in check or installed plugin declares")
        return self

    @classmethod
    def load(cls, *, plugins: bool = True) -> Registry:
        """The built-in checks, plus those of installed plugins; validated."""
        import checks

        registry = cls()
        registry.add_module(checks)
        if plugins:
            for plugin in entry_points(group=PLUGIN_GROUP):
                registry._add_plugin(plugin.name, plugin.load())
        return registry.validate()

    def _add_plugin(self, name: str, loaded: object) -> None:
        if isinstance(loaded, ModuleType):
            found = self.add_module(loaded)
        elif declared_check(loaded) is not None:
            found = [self.add(loaded)]  # type: ignore[arg-type]
        else:
            found = []
        if not found:
            raise RegistryError(f"the plugin '{name}' (entry point group {PLUGIN_GROUP}) declares no check: it must "
                                "name a module holding @check functions, or one such function")

    def __getitem__(self, check_id: str) -> Check:
        return self._checks[check_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._checks)

    def __len__(self) -> int:
        return len(self._checks)

    def __repr__(self) -> str:
        return f"Registry({', '.join(self._checks)})"


def load_checks() -> Registry:
    """The built-in checks plus any installed plugin's: Registry.load()."""
    return Registry.load()


def _origin(declared: Check) -> str:
    return getattr(declared.func, "__module__", None) or "?"
