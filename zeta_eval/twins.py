"""CFG twins: plain CFG from a sample's own initial noise at the guidance its source setting was measured to apply.

A sampler setting with ``twins`` (``true`` or some of ``schedule``, ``constant``, ``nfe_matched``) gets, for every
sample, right after it in the same batch:

- ``schedule``: standard CFG over the same steps with the per-step scales gamma_par measured on that sample
  (:mod:`samplers.guidance`);
- ``constant``: standard CFG over the same steps at that sample's mean measured scale;
- ``nfe_matched``: standard CFG at the mean measured scale over the fewest steps whose NFE reaches the source's
  (only where the source's NFE differs from CFG's 2 per step: the zigzag family, SEG; ζ's measuring ``probe`` does
  not count).

A step whose gamma_par is undefined (its guidance difference was not resolved above rounding, or no evaluation at the
anchor exists) runs at the sample's mean; a sample with no measured step at all runs at the source's first-order
``gamma_eff`` (a warning says so). "Source minus its twin", paired per item, is what the method does beyond its
guidance strength.

A twin is a sampler setting of its own (:class:`CFGTwin`): its key and sample ids derive from the source setting and
the kind (``{"twin_of": <source key>, "twin_kind": <kind>}``), so twins are resumed, sharded and deduplicated like
every sample, and its rows name their source (``twin_of``: the source's label; ``twin_kind``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from samplers import Sampler, Standard
from samplers.settings import setting

from .identity import sampler_key, to_json

log = logging.getLogger("zeta_eval")


@dataclass(kw_only=True, eq=False)
class CFGTwin(Standard):
    """Standard CFG with per-sample scales taken from a source setting's measured guidance (built by :func:`plan`,
    never from a config: configs ask for twins with a sampler's ``twins`` setting)."""

    name = "cfg_twin"

    twin_of: str = setting("")  # the source setting's key
    twin_kind: str = setting("schedule")
    source_label: str = setting("", identity="never")
    fallback_gamma: float = setting(5.5, identity="never")

    def params(self) -> dict[str, Any]:
        """What the twin's sample ids hash: the source setting and the kind (the scales follow from the source)."""
        return {"twin_of": self.twin_of, "twin_kind": self.twin_kind}

    def display_name(self) -> str:
        # the source's label first: reports that order settings by label list each twin right after its source
        return self.label or f"{self.source_label} · CFG twin ({self.twin_kind.replace('_', '-')})"

    def scales(self, source_rows: Sequence[dict[str, Any]], num_steps: int) -> torch.Tensor:
        """(batch, steps) scales for the twins of ``source_rows`` (rows of the source, in batch order)."""
        out = []
        for row in source_rows:
            steps = list(row.get("guidance_measured_steps") or [])
            if self.twin_kind == "schedule" and steps and len(steps) != num_steps:
                raise ValueError(f"{self.display_name()}: {len(steps)} measured steps for a twin of {num_steps} steps")
            defined = [v for v in steps if v is not None and math.isfinite(v)]
            if not defined:
                log.warning("%s: sample %s of %s has no measured guidance step; its twin runs at the first-order "
                            "γ_eff %g", self.display_name(), row.get("sample_id"), self.source_label,
                            self.fallback_gamma)
                mean = self.fallback_gamma
            else:
                mean = sum(defined) / len(defined)
            if self.twin_kind == "schedule":
                out.append([v if v is not None and math.isfinite(v) else mean for v in steps] or [mean] * num_steps)
            else:
                out.append([mean] * num_steps)
        return torch.tensor(out, dtype=torch.float64).reshape(len(source_rows), num_steps)


def method_nfe(source: Sampler, steps: int) -> int:
    """The NFE of ``source``'s method: a measuring probe (ζ's ``probe``, which changes no output) is not part of it."""
    if getattr(source, "probe", False):
        source = dataclasses.replace(source, probe=False)
    return source.expected_nfe(steps)


def kinds_for(source: Sampler, default_steps: int) -> list[str]:
    """The twin kinds that apply to ``source``: those it asks for, ``nfe_matched`` only where its NFE is not CFG's."""
    wanted = source.twins or []
    steps = source.num_steps(default_steps)
    return [k for k in wanted if k != "nfe_matched" or method_nfe(source, steps) != 2 * steps]


def plan(source: Sampler, default_steps: int, schedule: Any) -> list[CFGTwin]:
    """The twin settings of ``source`` in an experiment of ``default_steps`` steps and ``schedule``."""
    if not source.twins:
        return []
    if isinstance(source, Standard):
        raise ValueError(f"{source.display_name()}: twins copy a guidance method into plain CFG; a standard sampler "
                         "is plain CFG already (remove its twins setting)")
    steps = source.num_steps(default_steps)
    kinds = kinds_for(source, default_steps)
    if not kinds:  # it asked for nfe_matched alone: say so rather than run no twin at all
        raise ValueError(f"{source.display_name()}: no nfe_matched twin: {source.display_name()} costs "
                         f"{method_nfe(source, steps)} NFE, CFG's 2 per step, so its NFE-matched twin would be its "
                         "constant twin (ask for twins: [constant] or [schedule])")
    key = sampler_key(source, default_steps, schedule)
    twins = []
    for kind in kinds:
        twin_steps = steps
        if kind == "nfe_matched":
            twin_steps = max(1, math.ceil(method_nfe(source, steps) / 2))  # CFG costs 2 NFE per step
        twins.append(CFGTwin(twin_of=key, twin_kind=kind, steps=twin_steps, source_label=source.display_name(),
                             fallback_gamma=source.gamma_eff))
    return twins


def run_twins(settings: Sequence[CFGTwin], source_rows: list[dict[str, Any]], default_steps: int,
              run: Callable[[CFGTwin], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rows of every twin of one batch: each twin setting gets its per-sample scales from the source's rows
    and is run (``run``: the pipeline's sample-decode-score-save for this batch), and its rows are annotated."""
    rows: list[dict[str, Any]] = []
    for twin in settings:
        scales = twin.scales(source_rows, twin.num_steps(default_steps))
        twin_rows = run(twin.per_sample(scales))
        annotate(twin_rows, source_rows, twin, scales)
        rows += twin_rows
    return rows


def annotate(rows: list[dict[str, Any]], source_rows: Sequence[dict[str, Any]], twin: CFGTwin,
             scales: torch.Tensor) -> None:
    """Name the source in the twin's rows, and give each row the scales it ran (its own gamma1 / gamma_eff: the mean
    of its scales, and its schedule in ``sampler_params``)."""
    for row, source, gammas in zip(rows, source_rows, scales.tolist()):
        mean = sum(gammas) / len(gammas)
        params = {**json.loads(row["sampler_params"]), "gamma1": mean}
        if twin.twin_kind == "schedule":
            params["gamma_schedule"] = gammas
        row.update(twin_of=source["sampler_label"], twin_kind=twin.twin_kind, gamma1=mean, gamma2=None,
                   gamma_eff=mean, sampler_params=to_json(params))
