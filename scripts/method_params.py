"""Print trainable parameters of every method on one or more models, without weights or training.

    python scripts/method_params.py [model ...]     (default: tiny roberta-base)

Methods that need knobs sized for small models get the test suite's tiny knobs on `tiny*` models.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main(models: list[str]) -> None:
    from conftest import make_cfg
    from test_method_invariants import TINY_KNOBS

    from peftbench.errors import UserError
    from peftbench.methods import METHODS
    from peftbench.methods.counting import build_offline

    warnings.filterwarnings("ignore")
    print("| method | " + " | ".join(f"{m}: method params (head)" for m in models) + " |")
    print("|---|" + "---|" * len(models))
    for name in METHODS.names():
        cells = []
        for model in models:
            knobs = TINY_KNOBS.get(name, []) if model.startswith("tiny") else []
            try:
                p = build_offline(make_cfg(f"model={model}", f"method={name}", *knobs), 2)[2]
                cells.append(f"{p['method']:,} ({p['head']:,})")
            except UserError as exc:
                cells.append("refused: " + str(exc).splitlines()[0][:60])
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["tiny", "roberta-base"])
