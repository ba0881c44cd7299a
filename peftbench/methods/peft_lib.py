"""How peftbench reaches HF peft: imported without bitsandbytes unless a quantised model asked for it, and
the peft release each wrapped method needs (a clear message instead of peft's AttributeError or TypeError).

`import peft` imports bitsandbytes whenever it is installed (peft/helpers.py), and importing
bitsandbytes costs seconds (it loads torch._dynamo) and, on CPUs with AVX512-BF16 and no hub access,
logs warnings about kernels it cannot fetch, on every run, quantised or not; peft's LoRA, IA3, ...
import it again to look for quantised layers while they wrap a model. `bitsandbytes_hidden` keeps it
out while peft imports (`import_peft`) and wraps a model (peft_methods). A quantised run loads
bitsandbytes with its model (transformers), before peft sees it, and then nothing is hidden.
"""

from __future__ import annotations

import contextlib
import sys

from ..errors import UserError

# The first peft release with each method's config class and every knob peftbench/conf/method/<name>.yaml sets
# (from peft's release tags): LoRA's YAML sets use_dora (0.9.0), which its variants inherit.
NEEDS_PEFT = {
    "lora": "0.9.0", "dora": "0.9.0", "rslora": "0.9.0", "pissa": "0.11.0", "olora": "0.12.0",
    "adalora": "0.3.0", "ia3": "0.4.0", "loha": "0.6.0", "lokr": "0.6.0", "vera": "0.11.0",
    "oft": "0.14.0", "boft": "0.11.0", "fourierft": "0.12.0", "ln_tuning": "0.11.0", "hra": "0.12.0",
    "vblora": "0.13.0", "randlora": "0.16.0", "c3a": "0.16.0", "shira": "0.17.0", "road": "0.18.0",
    "miss": "0.17.0", "waveft": "0.18.0", "delora": "0.18.0", "osf": "0.18.0",
    "prompt_tuning": "0.0.1", "prefix_tuning_peft": "0.0.1", "p_tuning": "0.0.1",
    "adamss": "0.19.0", "gralora": "0.19.0", "lily": "0.19.0", "peanut": "0.19.0", "psoft": "0.19.0",
    "pvera": "0.19.0", "tinylora": "0.19.0", "beft": "0.20.0", "deft": "0.20.0", "frod": "0.20.0",
    "glora": "0.20.0", "hira": "0.20.0", "unilora": "0.20.0", "supertuning": "0.21.0",
}


@contextlib.contextmanager
def bitsandbytes_hidden():
    """Within: `import bitsandbytes` fails and it looks not installed, unless something imported it already
    (a quantised model). peft's availability probes that cache their answer are cleared on the way out."""
    if "bitsandbytes" in sys.modules:
        yield
        return
    import accelerate  # noqa: F401  (these note what is installed as they import: see it all first)
    import transformers  # noqa: F401

    sys.modules["bitsandbytes"] = None  # `import bitsandbytes` raises ImportError; find_spec returns None
    try:
        yield
    finally:
        if sys.modules.get("bitsandbytes", 0) is None:
            del sys.modules["bitsandbytes"]
        probes = sys.modules.get("peft.import_utils")
        for name in dir(probes) if probes else ():
            if name.startswith("is_") and hasattr(getattr(probes, name), "cache_clear"):
                getattr(probes, name).cache_clear()


def import_peft():
    """`import peft`, with bitsandbytes kept out unless something already imported it."""
    if "peft" not in sys.modules:
        with bitsandbytes_hidden():
            import peft  # noqa: F401
    return sys.modules["peft"]


def installed_peft() -> str:
    from importlib.metadata import version

    return version("peft")


def require_peft(method: str) -> None:
    """UserError when the installed peft is older than the release `method` needs."""
    from packaging.version import Version

    need, have = NEEDS_PEFT.get(method), installed_peft()
    if need and Version(have) < Version(need):
        raise UserError(f"method '{method}' needs peft >= {need}; peft {have} is installed. "
                        f"Upgrade it: pip install 'peft>={need}'.")
