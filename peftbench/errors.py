"""User-facing errors: the CLI prints these without a traceback and exits with status 2."""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A mistake in the user's input (config, data, command line), with a message that says the fix."""


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """`" Did you mean 'lora'?"` for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, value: object, choices: Iterable[str], hint: str = "") -> UserError:
    """`Unknown method 'loraa'. Did you mean 'lora'? Available: bitfit, full, head, lora.`"""
    choices = sorted(choices)
    parts = [f"Unknown {kind} '{value}'.{did_you_mean(value, choices)}"]
    parts.append(f"Available: {', '.join(choices)}.")
    if hint:
        parts.append(hint)
    return UserError(" ".join(parts))


class Registry:
    """Name -> object, for one kind of thing (method, metric, generator). Names are lowercase."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, object] = {}
        self._deferred = None

    def defer(self, load) -> None:
        """Call `load()` once, at the first lookup (get, names, in), to register entries from elsewhere
        (installed plugins): imported only when asked for, and never while their own module imports ours."""
        self._deferred = load

    def _loaded(self) -> dict[str, object]:
        if self._deferred is not None:
            load, self._deferred = self._deferred, None
            load()
        return self._entries

    def register(self, name: str, obj: object = None):
        if name != name.lower() or not name.replace("_", "").replace("/", "").isalnum():
            raise ValueError(f"{self.kind} name {name!r}: use lowercase letters, digits and '_' only")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")

        def add(o):
            self._entries[name] = o
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str):
        if name not in self._loaded():
            raise unknown_name(self.kind, name, self._entries)
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._loaded())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()
