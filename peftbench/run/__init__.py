"""Running: one run start to run file (`runner.run`), its processes (`launch`), a Hydra job of
`peftbench run` (`job`), and sweeps: config hashes, skipping done runs, the sweep ledger (`sweep`)."""
