"""The sections of scripts/bench.py, one module each (common.py: what they share). Run them through
`python scripts/bench.py [--quick] [--only SECTION,...]`."""
