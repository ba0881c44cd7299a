"""Running: one run start to run file (`runner.run`), its processes (`launch`), a Hydra job of
`peftbench run` (`job`: the run's lock (`lock`), the run in a child process of its own (`child`) with its
CPU threads (`threads`)), and sweeps: config hashes, skipping done runs, the sweep ledger (`sweep`)."""
