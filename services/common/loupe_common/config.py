"""Configuration from environment variables, read once at start-up.

Each service declares a frozen dataclass whose fields carry their variable name and default in
the field metadata (see `env_field`); `load(ConfigClass, environ)` reads them all and stops with
a message naming every missing required variable.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping

_MISSING = object()


class ConfigError(SystemExit):
    """Raised (and exits the process) when required configuration is missing or malformed."""


def env_field(name: str, default: object = _MISSING, doc: str = ""):
    """Declares a config field read from environment variable `name` (required if no default)."""
    return dataclasses.field(metadata={"env": name, "default": default, "doc": doc})


def _convert(raw: str, typ: object, name: str) -> object:
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typ in (tuple[str, ...], "tuple[str, ...]"):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return raw
    except ValueError as exc:
        raise ConfigError(f"environment variable {name}={raw!r} is not a valid {typ}") from exc


T = typing.TypeVar("T")


def load(cls: type[T], environ: Mapping[str, str]) -> T:
    """Builds config `cls` from `environ`; exits naming every missing required variable."""
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    missing: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = field.metadata["env"]
        default = field.metadata["default"]
        if name in environ:
            values[field.name] = _convert(environ[name], hints[field.name], name)
        elif default is _MISSING:
            missing.append(name)
        else:
            values[field.name] = default
    if missing:
        raise ConfigError(
            f"{cls.__name__}: missing required environment variable(s): {', '.join(missing)}"
        )
    return cls(**values)  # type: ignore[call-arg]


def describe(cls: type) -> list[tuple[str, object, str]]:
    """(variable, default, doc) for every field: the one list of a service's variables."""
    out = []
    for field in dataclasses.fields(cls):
        default = field.metadata["default"]
        out.append((field.metadata["env"], None if default is _MISSING else default, field.metadata["doc"]))
    return out


class ListenAddress:
    """Mixed into a gRPC service's config: `host` and `port` of its `addr` ("host:port")."""

    addr: str

    @property
    def host(self) -> str:
        return self.addr.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])
