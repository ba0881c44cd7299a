#!/usr/bin/env bash
# make glue: the MiniLM GLUE table on real GLUE files (peftbench/conf/experiment/glue_minilm.yaml), one method at a
# time, each a resumable multirun (re-running skips what is done and resumes what was killed).
#   scripts/glue_minilm.sh [default|sweep]
#     default  13 methods x 5 tasks x 3 seeds at each method's recommended rate: 195 runs
#     sweep    the same at 1x, 3x and 10x that rate (585 runs; the committed table, docs/results/glue-minilm)
# Environment: GLUE_DATA (required: a folder laid out as GLUE distributes it), GLUE_OUT (results/glue-minilm), PEFTBENCH (.venv/bin/peftbench),
# and any extra overrides in GLUE_ARGS (e.g. "hardware=cpu").
set -euo pipefail
lrs=${1:-default}
data=${GLUE_DATA:-}
[ -n "$data" ] || { echo "GLUE_DATA is not set: GLUE_DATA=DIR $0, DIR a folder laid out as GLUE distributes it (RTE/, MRPC/, CoLA/, STS-B/, SST-2/; peftbench data glue DIR writes one; README \"Getting the data\")" >&2; exit 2; }
out=${GLUE_OUT:-results/glue-minilm}
peftbench=${PEFTBENCH:-.venv/bin/peftbench}
# method: recommended rate (peftbench/conf/method/<name>.yaml default_lr), 3x, 10x
declare -A SWEEP=( [full]=2e-5,6e-5,2e-4 [head]=1e-3,3e-3,1e-2 [bitfit]=1e-3,3e-3,1e-2 [lora]=5e-4,1.5e-3,5e-3
  [dora]=5e-4,1.5e-3,5e-3 [ia3]=3e-3,9e-3,3e-2 [vera]=4e-3,1.2e-2,4e-2 [adapter_houlsby]=1e-3,3e-3,1e-2
  [adapter_pfeiffer]=1e-3,3e-3,1e-2 [compacter]=3e-3,9e-3,3e-2 [ssf]=5e-3,1.5e-2,5e-2 [lst]=3e-3,9e-3,3e-2
  [prompt_tuning]=3e-2,9e-2,3e-1 )
case $lrs in default|sweep) ;; *) echo "usage: $0 [default|sweep] (got '$lrs')" >&2; exit 2 ;; esac
[ -d "$data" ] || { echo "GLUE_DATA=$data: no such folder (GLUE's RTE/, MRPC/, CoLA/, STS-B/, SST-2/)" >&2; exit 2; }
status=0
for method in full head bitfit lora dora ia3 vera adapter_houlsby adapter_pfeiffer compacter ssf lst prompt_tuning; do
  rate=${SWEEP[$method]}
  [ "$lrs" = default ] && rate=${rate%%,*}
  echo "== $method: train.lr=$rate"
  "$peftbench" run -m +experiment=glue_minilm method=$method train.lr=$rate seed=1,2,3 \
    task=glue/rte,glue/mrpc,glue/stsb,glue/cola,glue/sst2 data_root="$data" results_dir="$out" ${GLUE_ARGS:-} || status=1
done
exit $status
