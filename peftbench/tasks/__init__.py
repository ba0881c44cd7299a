"""Task data: a task is a YAML file under peftbench/conf/task/ (the data); this package loads what it names.

`load_task(task_cfg)` returns pandas frames with the task's text fields and a normalised `label`
column (class ids, or floats for regression), from one of three sources: local files (`data_dir`, or
`<data_root>/<data_subdir>`: `resolve_data_dir`), a peftbench generator (offline tasks), or the Hugging
Face Hub (`dataset` + `subset`; or a local copy of a hub repository). The span kinds' file layouts
(CoNLL, SQuAD JSON) are read in `formats`.
"""

from . import demo_spans  # noqa: F401  (registers the generator ner)
from .fingerprint import data_fingerprint
from .loading import TaskData, data_paths, load_task, resolve_data_dir

__all__ = ["TaskData", "data_fingerprint", "data_paths", "load_task", "resolve_data_dir"]
