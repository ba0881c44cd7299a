"""`compose(overrides)`: the run config as `peftbench run` uses it, composed outside a Hydra job (the
command line's check before Hydra starts, `--cfg job`, `peftbench params`, scripts and tests): Hydra's
composition over the schema, the task names checked, the task's `per_task` values applied. Composition
errors become one UserError naming the key and the fix."""

from __future__ import annotations

from ..errors import UserError


def compose(overrides: list[str], config_dirs: list[str] = (), checked: bool = False):
    """The run config for these overrides as a run of `peftbench run` uses it (no run dir, no Hydra job): its
    task's `per_task` values applied (what the command line sets wins), with the folders of --config-dir on
    the search path; `checked`: the group choices were checked already. Hydra's composition errors become one
    UserError: an unknown key with the closest valid keys of its node, a value of the wrong type with the type
    expected."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .choices import check_group_choices
    from .overrides import apply_per_task, check_task_names

    if not checked:
        check_group_choices(overrides, config_dirs=config_dirs)
    explicit = [o.split("=")[0].lstrip("+~") for o in overrides]
    if config_dirs:
        overrides = [*overrides, f"hydra.searchpath=[{','.join('file://' + d for d in config_dirs)}]"]
    try:
        cfg = _hydra_compose(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise compose_error(exc, overrides) from None
    check_task_names(cfg, config_dirs)  # per_task keys, init_from=task:<name>: before per_task is applied
    apply_per_task(cfg, explicit=explicit)
    return cfg


def _hydra_compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from .schema import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


TYPE_NAMES = {"Float": "a float", "Integer": "an integer", "Boolean": "true or false", "bool": "true or false"}


def compose_error(exc: Exception, overrides: list[str]) -> UserError:
    """`Unknown key 'lrr' in train. Did you mean 'lr'? Valid keys: ...` or `train.lr='abc': expected a float.`"""

    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    from ..errors import did_you_mean

    cause, message = exc.__cause__, str(exc).strip()
    key = getattr(cause, "full_key", None)
    if isinstance(cause, ValidationError) and key:
        return type_error(key, cause)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and key:
        parent, _, name = key.rpartition(".")
        keys = [o.lstrip("+~").split("=")[0] for o in overrides]
        rest = [o for o, k in zip(overrides, keys) if k != key and not k.startswith(key + ".")]
        try:
            node = _hydra_compose(rest)
            node = OmegaConf.select(node, parent) if parent else node
        except Exception:  # another mistake in the rest: Hydra's own words
            node = None
        if isinstance(node, DictConfig):
            valid = sorted(str(k) for k in node.keys())
            where = f" in {parent}" if parent else ""
            hint = (f" A knob of method '{node.name}' that its YAML leaves out is added with "
                    f"+method.<knob>=<value>." if parent == "method" else "")
            return UserError(f"Unknown key '{name}'{where}.{did_you_mean(name, valid)} "
                             f"Valid keys: {', '.join(valid)}.{hint}")
    detail = f" ({str(cause).splitlines()[0]})" if cause is not None and str(cause) else ""
    return UserError(message + detail)


def type_error(key: str, exc: Exception) -> UserError:
    import re

    expected = re.search(r"converted to (\w+)|not a valid (bool)", str(exc))
    if expected:
        return UserError(f"{key}={exc.value!r}: expected {TYPE_NAMES[expected[1] or expected[2]]}.")
    return UserError(f"{key}={exc.value!r}: {str(exc).splitlines()[0]}")
