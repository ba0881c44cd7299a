"""Method families for colouring the report's page and plots: the taxonomy of the PEFT surveys (Han et
al. 2024, "Parameter-Efficient Fine-Tuning for Large Models: A Comprehensive Survey"), one colour each.
A method not listed here is "other"; the report never refuses one."""

from __future__ import annotations

# family -> (colour, methods); the order is the legend's. Colours: matplotlib's tab10, so page and plots agree.
FAMILIES = {
    "full fine-tuning": ("#1f77b4", ("full",)),
    "linear probe": ("#7f7f7f", ("head",)),
    "selective": ("#2ca02c", ("bitfit", "ln_tuning", "sparse_ft", "lofit")),
    "adapters": ("#ff7f0e", ("adapter_houlsby", "adapter_pfeiffer", "compacter", "compacterpp", "parallel_adapter",
                             "scaled_parallel_adapter", "mam_adapter", "binary_adapter")),
    "side network": ("#8c564b", ("lst",)),
    "rescaling": ("#9467bd", ("ia3", "ssf")),
    "low-rank / reparameterised": ("#d62728", (
        "lora", "dora", "rslora", "pissa", "olora", "adalora", "loha", "lokr", "vera", "pvera", "fourierft",
        "vblora", "randlora", "hydra", "mos", "svfit", "hra", "oft", "boft", "c3a", "shira", "road", "miss",
        "waveft", "delora", "tinylora", "unilora", "gralora", "hira", "lily", "glora", "psoft", "osf")),
    "soft prompts": ("#17becf", ("prompt_tuning", "prefix_tuning", "prefix_tuning_peft", "p_tuning", "vpt", "vqt")),
}
OTHER = ("other", "#bcbd22")
_BY_METHOD = {m: family for family, (_, methods) in FAMILIES.items() for m in methods}


def family(method: str) -> str:
    return _BY_METHOD.get(method, OTHER[0])


def colour(family_name: str) -> str:
    return FAMILIES[family_name][0] if family_name in FAMILIES else OTHER[1]
