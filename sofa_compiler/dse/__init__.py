"""Design-space exploration (issue 8): per-layer KV tile and keep ratio, and hardware sweeps.

* `problem`: the layers being tuned, their calibration inputs, one layer's evaluation;
* `objective`: the paper's Eq. 2-4 with a measured error proxy for L_en;
* `search`: the Optuna study (ask/tell in fixed batches, so results do not
  depend on the number of workers), resumable from its storage;
* `cluster`: where evaluations run (a Dask `LocalCluster`, or an existing scheduler);
* `sweep`: hardware configs x workloads; `plots`: Pareto fronts and sweep charts.
"""
