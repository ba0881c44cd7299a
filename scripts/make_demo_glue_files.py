"""Write the demo task's data as GLUE SST-2 files, to try `task.data_dir=` without GLUE:

    python scripts/make_demo_glue_files.py demo_sst2
    peftbench run task=glue/sst2 task.data_dir=demo_sst2
"""

import argparse

from peftbench.tasks.synthetic import write_glue_tsv

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("folder")
parser.add_argument("--n-train", type=int, default=4000)
parser.add_argument("--n-eval", type=int, default=1000)
args = parser.parse_args()
folder = write_glue_tsv(args.folder, n_train=args.n_train, n_eval=args.n_eval)
print(f"wrote {folder}/train.tsv and {folder}/dev.tsv (SST-2 layout: sentence, label)")
