"""``shiftlab-probe``: a fine-tuned model's test split under word-order perturbations.

The shift policies that move words for training (:mod:`shiftlab.shifts`) are applied at test
time instead, the question of Sinha et al. 2021 (*UnNatural Language Inference*), Pham et al.
2021 (*Out of Order*) and Gupta et al. 2021: does the model even use word order?

    grid.py     the conditions (policy, parameters, unit) and the preset grids
    perturb.py  one condition on one labelled batch (tagging labels move with their words)
    targets.py  what is probed: a run's task, a run's standard export, any transformers model
    scoring.py  the metrics of one pass, as the fine-tuning module computes them
    runner.py   every condition x draw over the test split
    report.py   probe.json, the table (md / csv / tex), the plot, the run's probe_metrics.json
    cli.py      the command
"""

from .grid import GRIDS, Condition, conditions_for, parse_condition
from .runner import ProbeResult, run_probe
from .targets import ProbeTarget, targets_for

__all__ = ["GRIDS", "Condition", "ProbeResult", "ProbeTarget", "conditions_for", "parse_condition", "run_probe",
           "targets_for"]
