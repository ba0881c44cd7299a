"""peftbench: a config-driven benchmark runner for parameter-efficient fine-tuning methods.

Importing the package is cheap on purpose (no torch): `peftbench report` and `--help` stay fast.
"""

__version__ = "0.1.0"
