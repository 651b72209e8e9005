"""Which components go together, told from the config alone, before anything is loaded.

The backbone's kind (``backbone.kind``), each pretraining objective (``objective.heads``: its
name and parameters) and the shift policy (``shift``) are checked against each other: an
objective for another kind of backbone (``mlm`` on a decoder), parameters it does not take, or a
policy under which it never has a target (``mlm`` with ``token_move``) is a
:class:`~shiftlab.config_schema.ConfigError`, one line naming the keys and what would fit, with
no run directory made. These checks are the ones the stages run again when they build the parts
(:func:`~shiftlab.models.objectives.check_objective`); what needs the data or the loaded model
(a task's labels, a tokenizer's special tokens) is checked when the run starts
(:meth:`~shiftlab.run_context.RunContext.build`).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from shiftlab.config_schema import ConfigError


def check_components(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` if the objective(s), the backbone and the shift policy of
    ``cfg`` cannot train together."""
    from shiftlab.models.objectives import check_objective
    from shiftlab.shifts import build_policy

    heads = _plain(cfg.objective.get("heads"))
    if not heads:  # objective=none: no pretraining, nothing to fit together
        return
    errors = []
    try:
        policy = build_policy(cfg.shift.name, **_plain(cfg.shift.get("params")))
    except (TypeError, ValueError) as error:
        errors.append(f"shift={cfg.shift.name}: {error}")
        policy = None
    for name, params in heads.items():
        try:
            check_objective(name, cfg.backbone.kind, cfg.backbone.name, params or {}, policy)
        except ValueError as error:
            errors.append(f"objective={cfg.objective.name} with backbone={cfg.backbone.name} and shift={cfg.shift.name}: "
                          f"{error}")
    if errors:
        raise ConfigError(errors)


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
