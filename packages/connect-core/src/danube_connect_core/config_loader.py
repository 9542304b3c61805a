"""Load one TOML file into the core config plus the connector's own section.

Order: read the file, apply the documented environment overrides (env wins over TOML), validate with
the strict models (unknown keys are errors), check referenced files. Any problem raises
:class:`~danube_connect_core.errors.ConfigError` whose message is one line naming the file and the key
(invariant 4); secret values never appear in it (invariant 7).
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.errors import ConfigError

__all__ = [
    "CONFIG_PATH_ENV",
    "CORE_ENV_OVERRIDES",
    "ConfigSpec",
    "load_config",
    "resolve_config_path",
]

CONFIG_PATH_ENV = "CONNECTOR_CONFIG_PATH"

#: Environment variable -> dotted key in the core config (listed in packages/connect-core/README.md).
CORE_ENV_OVERRIDES: dict[str, str] = {
    "DANUBE_SERVICE_URL": "danube_service_url",
    "CONNECTOR_NAME": "connector_name",
    "METRICS_PORT": "processing.metrics_port",
    "LOG_LEVEL": "processing.log_level",
    "LOG_FORMAT": "processing.log_format",
}
_LOWERCASED = {"LOG_LEVEL", "LOG_FORMAT"}


@dataclass(frozen=True)
class ConfigSpec:
    """What a connector contributes to loading: its section name, model and env overrides.

    ``env_prefix`` derives ``<PREFIX>_<FIELD>`` overrides for the section's top-level fields;
    ``env_overrides`` adds explicit ones (variable -> dotted key inside the section).
    ``extra_sections`` are further root tables the connector accepts as they are (rarely needed).
    """

    section: str | None = None
    model: type[BaseModel] | None = None
    env_prefix: str | None = None
    env_overrides: Mapping[str, str] = field(default_factory=dict)


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The config file to use: ``--config`` wins over ``CONNECTOR_CONFIG_PATH``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_PATH_ENV)
    if from_env:
        return Path(from_env)
    raise ConfigError(f"no configuration file: pass --config FILE or set {CONFIG_PATH_ENV}")


def load_config(
    path: str | os.PathLike[str] | None,
    spec: ConfigSpec | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ConnectorConfig:
    """Load and validate ``path`` (or ``CONNECTOR_CONFIG_PATH``). Raises ConfigError on any problem."""
    spec = spec or ConfigSpec()
    env = os.environ if environ is None else environ
    file = (
        resolve_config_path(path) if path is not None or CONFIG_PATH_ENV in env else resolve_config_path(None)
    )
    raw = _read_toml(file)

    core_keys = set(ConnectorConfig.model_fields)
    section_raw: Any = None
    core_raw: dict[str, Any] = {}
    for key, value in raw.items():
        if key in core_keys:
            core_raw[key] = value
        elif spec.section is not None and key == spec.section:
            section_raw = value
        else:
            hint = f" (this connector's section is [{spec.section}])" if spec.section else ""
            raise ConfigError(f"unknown key{hint}", file=file, key=key)

    from_env: dict[str, str] = {}
    for var, dotted in CORE_ENV_OVERRIDES.items():
        if env.get(var):
            value = env[var].lower() if var in _LOWERCASED else env[var]
            _set_dotted(core_raw, dotted, value, file)
            from_env[dotted] = var

    settings: Any = None
    if spec.model is not None:
        if section_raw is None:
            section_raw = {}
        if not isinstance(section_raw, dict):
            raise ConfigError("must be a table", file=file, key=spec.section)
        for var, dotted in _section_overrides(spec).items():
            if env.get(var):
                # An override of a secret field carries the secret itself, not a variable name
                # (invariant 7: read as a name, it would be echoed by the "variable not set" error).
                override: Any = SecretStr(env[var]) if _is_secret_field(spec.model, dotted) else env[var]
                _set_dotted(section_raw, dotted, override, file)
                from_env[f"{spec.section}.{dotted}"] = var
        settings = _validate(spec.model, section_raw, file, prefix=spec.section, from_env=from_env)
    elif section_raw is not None and spec.section is not None:
        raise ConfigError("this connector takes no settings section", file=file, key=spec.section)

    config = _validate(ConnectorConfig, core_raw, file, prefix=None, from_env=from_env)
    assert isinstance(config, ConnectorConfig)
    config = _resolve_schema_files(config, file)
    return config.with_settings(settings, file)


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError("configuration file not found", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file: {exc.strerror}", file=file) from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=file) from None
    except RecursionError:  # tomllib recurses per nesting level (arrays/inline tables a few thousand deep)
        raise ConfigError("invalid TOML: values nested too deeply", file=file) from None


def _section_overrides(spec: ConfigSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    if spec.env_prefix and spec.model is not None:
        for name, info in spec.model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                continue
            if getattr(annotation, "__origin__", None) in (list, dict):
                continue
            out[f"{spec.env_prefix}_{name.upper()}"] = name
    out.update(spec.env_overrides)
    return out


def _is_secret_field(model: type[BaseModel], dotted: str) -> bool:
    """Whether ``dotted`` names a SecretStr field of ``model``, through nested models, Optional and
    Annotated wrappers (``EnvSecret | None`` included)."""
    head, _, rest = dotted.partition(".")
    info = model.model_fields.get(head)
    if info is None:
        return False
    if not rest:
        return _mentions(info.annotation, SecretStr)
    return any(_is_secret_field(nested, rest) for nested in _models_in(info.annotation))


def _mentions(annotation: Any, wanted: type) -> bool:
    return annotation is wanted or any(_mentions(arg, wanted) for arg in typing.get_args(annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _set_dotted(target: dict[str, Any], dotted: str, value: Any, file: Path) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError("must be a table", file=file, key=part)
        node = child
    node[parts[-1]] = value


def _format_loc(loc: tuple[int | str, ...], prefix: str | None) -> str:
    out = prefix or ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue  # pydantic's internal validator/union tags are noise for a user
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _validate(
    model: type[BaseModel], data: dict[str, Any], file: Path, *, prefix: str | None, from_env: dict[str, str]
) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        first = _most_useful(errors)
        key = _format_loc(tuple(first["loc"]), prefix) or (prefix or "")
        message = _message(first)
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif first["type"] == "missing":
            message = "required field is missing"
        env_var = from_env.get(key)
        if env_var:
            message += f" (value from environment variable {env_var})"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise ConfigError(message, file=file, key=key) from None


def _most_useful(errors: list[Any]) -> Any:
    # A union (version_strategy) reports one error per alternative; prefer a non-union one if any.
    for err in errors:
        if not any(
            isinstance(p, str) and ("[" in p or p in ("PinnedVersion", "MinimumVersion")) for p in err["loc"]
        ):
            return err
    return errors[0]


def _message(err: Any) -> str:
    msg = str(err["msg"])
    for noise in ("Value error, ", "Assertion failed, "):
        if msg.startswith(noise):
            msg = msg[len(noise) :]
    return msg


def _resolve_schema_files(config: ConnectorConfig, file: Path) -> ConnectorConfig:
    """Make schema_file paths absolute (relative to the config file, else to the working directory)."""
    resolved = []
    for i, mapping in enumerate(config.schemas):
        if mapping.schema_file is None:
            resolved.append(mapping)
            continue
        candidates = [mapping.schema_file]
        if not mapping.schema_file.is_absolute():
            candidates.insert(0, file.parent / mapping.schema_file)
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ConfigError(
                f"schema file {mapping.schema_file} not found", file=file, key=f"schemas[{i}].schema_file"
            )
        resolved.append(mapping.model_copy(update={"schema_file": found.resolve()}))
    return config.model_copy(update={"schemas": resolved})
