"""Real GLUE files, in the folder named by the PEFTBENCH_GLUE_DATA environment variable (CI sets it to the
repository's copy; unset, these tests skip):
every file loads through `data_root` with GLUE's official row counts and label counts; the same files in
the `nyu-mll/glue` hub repository's layout (Parquet, README `configs:`) load through the hub code path;
and (slow) one short training run per task type on them."""

import csv
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import TINY_MODEL, make_cfg
from peftbench.errors import UserError
from peftbench.tasks import load_task

GLUE = Path(os.environ.get("PEFTBENCH_GLUE_DATA", "")).expanduser().resolve()
# Set but missing fails (a CI typo must not skip the tests silently); unset skips.
pytestmark = pytest.mark.skipif(not os.environ.get("PEFTBENCH_GLUE_DATA"),
                                reason="PEFTBENCH_GLUE_DATA is not set to a GLUE folder (RTE/, MRPC/, CoLA/, "
                                "STS-B/, SST-2/, as `peftbench data glue DIR` writes it)")

# (task, folder): rows (train, dev) as GLUE publishes them, and the count of each label id (the task's
# label_names order) counted once from the files. They match GLUE's published distributions: RTE dev 146
# entailment / 131 not; MRPC 67.4% / 68.4% paraphrases (the "always paraphrase" baseline's 68.4 dev
# accuracy); CoLA dev 69.1% acceptable (the majority baseline); SST-2 dev 444 positive / 428 negative.
COUNTS = {
    "glue/rte": ((2490, 277), ({0: 1249, 1: 1241}, {0: 146, 1: 131})),
    "glue/mrpc": ((3668, 408), ({0: 1194, 1: 2474}, {0: 129, 1: 279})),
    "glue/cola": ((8551, 1043), ({0: 2528, 1: 6023}, {0: 322, 1: 721})),
    "glue/sst2": ((67349, 872), ({0: 29780, 1: 37569}, {0: 428, 1: 444})),
}
STSB_MEANS = (2.701, 2.364)  # STS-B similarity scores, 0..5: mean over train, dev


def from_data_root(task: str, *overrides):
    cfg = make_cfg(f"task={task}", f"data_root={GLUE}", *overrides)
    return load_task(cfg.task, data_root=cfg.data_root), cfg.task


@pytest.mark.parametrize("task", sorted(COUNTS))
def test_shipped_classification_files_have_glue_counts(task):
    data, cfg = from_data_root(task)
    (n_train, n_dev), (train_labels, dev_labels) = COUNTS[task]
    train, dev = data.train, data.evals["validation"]
    assert data.source == f"data_dir:{GLUE / cfg.data_subdir}"
    assert (len(train), len(dev)) == (n_train, n_dev)
    assert train["label"].value_counts().to_dict() == train_labels
    assert dev["label"].value_counts().to_dict() == dev_labels
    for field in cfg.text_fields:  # no row lost its text to a quoting, BOM or header quirk
        assert (train[field].str.len() > 0).all() and (dev[field].str.len() > 0).all()


def test_shipped_stsb_is_a_regression_on_0_to_5():
    data, _ = from_data_root("glue/stsb")
    assert data.num_labels == 1
    for df, n, mean in zip((data.train, data.evals["validation"]), (5749, 1500), STSB_MEANS):
        assert len(df) == n and df["label"].between(0, 5).all()
        assert df["label"].min() == 0 and df["label"].max() == 5
        assert df["label"].mean() == pytest.approx(mean, abs=5e-4)


def test_mrpc_byte_order_mark_and_cola_quirks():
    """MRPC's files start with a UTF-8 BOM before their `Quality` column; CoLA train has no header and its
    dev file no final newline: the first and last rows still load as they are in the files."""
    mrpc, _ = from_data_root("glue/mrpc")
    assert mrpc.train["label"][0] == 1 and mrpc.train["sentence1"][0].startswith("Amrozi accused his brother")
    cola, _ = from_data_root("glue/cola")
    last = (GLUE / "CoLA" / "dev.tsv").read_text().split("\n")[-1].split("\t")
    assert cola.evals["validation"]["sentence"].iloc[-1] == last[3]
    assert cola.evals["validation"]["label"].iloc[-1] == int(last[1])


# --- the hub path (`nyu-mll/glue`), offline: the shipped files in that repository's layout --------------

HUB = {  # config: (GLUE folder, text columns, label feature: class names, or None for a float score)
    "rte": ("RTE", ["sentence1", "sentence2"], ["entailment", "not_entailment"]),
    "stsb": ("STS-B", ["sentence1", "sentence2"], None),
}


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)


def hub_split(df: pd.DataFrame, texts: list[str], names: list[str] | None, hidden: bool = False) -> pd.DataFrame:
    """Rows as the hub has them: text columns, `label` (a class id, a float, or -1 hidden), `idx`."""
    out = df[texts].copy()
    if names is None:
        out["label"] = -1.0 if hidden else df["score"].astype(float)
    else:
        out["label"] = -1 if hidden else df["label"].map({n: i for i, n in enumerate(names)})
    out["idx"] = range(len(out))
    return out


def write_hub_glue(root: Path) -> Path:
    """A folder laid out like the `nyu-mll/glue` repository: <config>/{split}-00000-of-00001.parquet
    with class-label features, the test split's labels -1, and a README whose YAML header declares
    `dataset_info` and `configs` (data_files per split) as the hub's dataset card does."""
    import datasets

    infos, configs = [], []
    for config, (folder, texts, names) in HUB.items():
        label = datasets.ClassLabel(names=names) if names else datasets.Value("float32")
        features = datasets.Features({**{t: datasets.Value("string") for t in texts}, "label": label,
                                      "idx": datasets.Value("int32")})
        train, dev = read_tsv(GLUE / folder / "train.tsv"), read_tsv(GLUE / folder / "dev.tsv")
        splits = {"train": hub_split(train, texts, names), "validation": hub_split(dev, texts, names),
                  "test": hub_split(dev.head(100), texts, names, hidden=True)}  # GLUE hides test labels
        (root / config).mkdir(parents=True)
        sizes = []
        for split, df in splits.items():
            ds = datasets.Dataset.from_pandas(df, features=features, preserve_index=False)
            ds.to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
            sizes.append({"name": split, "num_bytes": ds.data.nbytes, "num_examples": len(ds)})
        label_yaml = {"class_label": {"names": {str(i): n for i, n in enumerate(names)}}} if names else "float32"
        infos.append({"config_name": config,
                      "features": [{"name": t, "dtype": "string"} for t in texts]
                      + [{"name": "label", "dtype": label_yaml}, {"name": "idx", "dtype": "int32"}],
                      "splits": sizes})
        configs.append({"config_name": config,
                        "data_files": [{"split": s, "path": f"{config}/{s}-*"} for s in splits]})
    header = yaml.safe_dump({"dataset_info": infos, "configs": configs}, sort_keys=False)
    (root / "README.md").write_text(f"---\n{header}---\n\n# GLUE (a local copy in the hub's layout)\n")
    return root


@pytest.fixture(scope="module")
def hub_glue(tmp_path_factory):
    import datasets

    cache = tmp_path_factory.mktemp("hf-datasets-cache")
    before, datasets.config.HF_DATASETS_CACHE = datasets.config.HF_DATASETS_CACHE, cache  # not ~/.cache
    yield write_hub_glue(tmp_path_factory.mktemp("nyu-mll-glue"))
    datasets.config.HF_DATASETS_CACHE = before


@pytest.mark.parametrize("task", ["glue/rte", "glue/stsb"])
def test_hub_layout_loads_through_the_hub_path_like_the_tsv_files(hub_glue, task):
    hub = load_task(make_cfg(f"task={task}", f"task.dataset={hub_glue}").task)
    tsv, cfg = from_data_root(task)
    assert hub.source == f"hub:{hub_glue}/{cfg.subset}"
    assert list(hub.evals) == ["validation"]  # GLUE tasks evaluate on validation, never on test
    for got, want in ((hub.train, tsv.train), (hub.evals["validation"], tsv.evals["validation"])):
        assert len(got) == len(want) and list(got.columns) == list(want.columns)  # idx dropped
        pd.testing.assert_frame_equal(got, want, check_dtype=False, atol=1e-6)  # label ids mean the same


def test_hub_rte_label_ids_and_the_hidden_test_split(hub_glue):
    hub = load_task(make_cfg("task=glue/rte", f"task.dataset={hub_glue}").task)
    assert hub.evals["validation"]["label"].value_counts().to_dict() == {0: 146, 1: 131}  # 0 = entailment
    on_test = make_cfg("task=glue/rte", f"task.dataset={hub_glue}").task
    on_test.eval_splits = {"test": ""}  # asking for the test split is refused, and says why
    with pytest.raises(UserError, match="label '-1' in row 0 .* hidden test labels"):
        load_task(on_test)


def test_hub_folder_with_a_tilde(hub_glue, monkeypatch):
    monkeypatch.setenv("HOME", str(hub_glue.parent))
    data = load_task(make_cfg("task=glue/rte", f"task.dataset='~/{hub_glue.name}'").task)
    assert len(data.train) == 2490


# --- one short real-data run per task type (slow) --------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("task, metrics", [("glue/rte", {"accuracy"}), ("glue/stsb", {"pearson", "spearmanr"})])
def test_short_run_on_real_glue(tmp_path, task, metrics):
    from peftbench.run.runner import run

    cfg = make_cfg(*TINY_MODEL, f"task={task}", f"data_root={GLUE}", "task.max_train_samples=256",
                   "train.max_steps=8", "train.save_trainable=false")
    record = run(cfg, tmp_path / "run")
    assert record["status"] == "ok" and set(record["metrics"]) == metrics
    assert all(math.isfinite(v) for v in record["metrics"].values())
    assert record["data"]["source"] == f"data_dir:{GLUE / cfg.task.data_subdir}"
    assert record["data"]["train_examples"] == 256
    assert record["data"]["eval_examples"] == {"validation": {"glue/rte": 277, "glue/stsb": 1500}[task]}
