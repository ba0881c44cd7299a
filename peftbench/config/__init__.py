"""Configuration: the typed schema Hydra composes over (`schema`), the task kinds and task-file checks
(`kinds`), the value checks run before a run starts (`checks`), the group choices checked before
Hydra composes (`choices`) and a protocol's per-task settings (`overrides`). Below every other layer
but `errors`: it imports nothing else of peftbench."""

from .checks import check_config, eval_splits, raise_problems
from .choices import check_group_choices
from .kinds import KINDS, check_task_file, kind_problems
from .overrides import apply_per_task
from .schema import (CONF_DIR, GROUPS, LOCATION_KEYS, POOLINGS, VOLATILE, HardwareConfig, LaunchConfig, MethodConfig,
                     ModelConfig, RunConfig, TaskConfig, TrainConfig, group_options, name_tag, register, slug)

__all__ = ["CONF_DIR", "GROUPS", "KINDS", "LOCATION_KEYS", "POOLINGS", "VOLATILE", "HardwareConfig", "LaunchConfig", "MethodConfig", "ModelConfig", "RunConfig", "TaskConfig",
           "TrainConfig", "apply_per_task", "check_config", "check_group_choices", "check_task_file", "eval_splits", "group_options",
           "kind_problems", "name_tag", "raise_problems", "register", "slug"]
