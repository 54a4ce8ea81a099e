"""Seed policies: how each (prompt, sample) item gets the seed of its initial latent.

A seed is a function of three things only: the prompt's *prompt index*, the item's *sample index* and, for the
``source`` policy, the prompt's own row. It never depends on sharding, rank, batch size or worker count, so a
sample keeps its seed (and its identity) however a run is split or resumed.

Definitions (``k`` = samples per prompt, ``j`` = sample index in ``0 .. k-1``):

- *prompt index* ``i``: the prompt's position among the prompts the source yields, counting from the start of the
  source (before ``start``/``limit`` slicing) and not counting rows dropped as empty. Slicing therefore never
  changes a prompt's seed: rows 0-99 and rows 100-199 run separately get the seeds of one run over rows 0-199.

===========================  =======================================  ==========================================
``seeds`` value              policy                                   seed of sample ``j`` of prompt ``i``
===========================  =======================================  ==========================================
``42`` (an int)              ``fixed``: the same noise for every      ``42 + j``
                             prompt (Z-Sampling's demo; GenEval)
``"per_prompt_index"``       ``per_prompt_index`` (W2SD/Z-Sampling    ``i * k + j`` (``k = 1``: ``i``)
                             benchmark protocol)
``{"per_prompt_index": o}``  the same with an offset                  ``o + i * k + j``
``[s0, s1, ...]``            ``per_sample``: one list applied to      ``s_j``; ``k`` = the list's length
                             every prompt
``{"per_sample": [...]}``    the same, spelled out
``{"per_prompt": [...]}``    ``per_prompt``: one seed per prompt      ``L[i] + j``
                             index (e.g. a paper's seed file)
``"source"``                 ``source``: the row's own seed column    ``row[seed_column] + j``
``{"source": "col"}``        the same with a named column
``{"fixed": 42}``            ``fixed``, spelled out                   ``42 + j``
===========================  =======================================  ==========================================

Seeds must be integers in ``[0, 2**63)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_SEED = 2**63 - 1
POLICIES = ("fixed", "per_prompt_index", "per_prompt", "per_sample", "source")


def _check_seed(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"{what} must be in [0, 2**63), got {value}")
    return value


def _seed_list(values: Any, what: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{what} must be a non-empty list of integers, got {values!r}")
    return tuple(_check_seed(v, f"{what}[{n}]") for n, v in enumerate(values))


@dataclass(frozen=True)
class SeedPolicy:
    """A parsed ``seeds`` argument; see the module docstring for the rules."""

    kind: str
    samples_per_prompt: int = 1
    base: int = 0
    values: tuple[int, ...] = ()
    column: str = "seed"

    @classmethod
    def parse(cls, seeds: Any, samples_per_prompt: int | None = None, seed_column: str = "seed") -> "SeedPolicy":
        """Turn the user's ``seeds`` value (int, str, list or one-key dict) into a policy."""
        if samples_per_prompt is not None and (isinstance(samples_per_prompt, bool)
                                               or not isinstance(samples_per_prompt, int) or samples_per_prompt < 1):
            raise ValueError(f"samples_per_prompt must be an integer >= 1, got {samples_per_prompt!r}")
        kind, arg = cls._split(seeds)
        k = samples_per_prompt or 1
        if kind == "fixed":
            return cls("fixed", k, base=_check_seed(arg, "the fixed seed"))
        if kind == "per_prompt_index":
            return cls("per_prompt_index", k, base=_check_seed(arg, "the per_prompt_index offset"))
        if kind == "per_prompt":
            return cls("per_prompt", k, values=_seed_list(arg, "seeds per_prompt"))
        if kind == "per_sample":
            values = _seed_list(arg, "seeds per_sample")
            if samples_per_prompt is not None and samples_per_prompt != len(values):
                raise ValueError(f"seeds lists {len(values)} seeds per prompt but samples_per_prompt="
                                 f"{samples_per_prompt}; give one seed per sample or leave samples_per_prompt unset")
            return cls("per_sample", len(values), values=values)
        # source
        column = seed_column if arg is None else arg
        if not isinstance(column, str) or not column:
            raise ValueError(f"the source seed column must be a column name, got {column!r}")
        return cls("source", k, column=column)

    @staticmethod
    def _split(seeds: Any) -> tuple[str, Any]:
        if isinstance(seeds, bool):
            raise ValueError(f"seeds must be an int, a policy name, a list or a one-key dict, got {seeds!r}")
        if isinstance(seeds, int):
            return "fixed", seeds
        if isinstance(seeds, str):
            if seeds in ("per_prompt_index", "source"):
                return seeds, (0 if seeds == "per_prompt_index" else None)
            raise ValueError(f"unknown seeds policy {seeds!r}; use an int (fixed seed), 'per_prompt_index', 'source', "
                             f"a list of seeds, or a one-key dict with one of {list(POLICIES)}")
        if isinstance(seeds, Mapping):
            if len(seeds) != 1 or next(iter(seeds)) not in POLICIES:
                raise ValueError(f"a seeds dict has exactly one key out of {list(POLICIES)}, got {dict(seeds)!r}")
            (kind, arg), = seeds.items()
            return kind, arg
        if isinstance(seeds, Sequence):
            return "per_sample", seeds
        raise ValueError(f"seeds must be an int, a policy name, a list or a one-key dict, got {seeds!r}")

    def seed(self, prompt_index: int, sample_index: int, row: Mapping[str, Any] | None = None,
             prompt_id: str = "?") -> int:
        """The seed of sample ``sample_index`` of the prompt with index ``prompt_index`` (and source row ``row``)."""
        j, k = sample_index, self.samples_per_prompt
        if not 0 <= j < k:
            raise ValueError(f"sample_index {j} outside [0, {k})")
        if self.kind == "fixed":
            value = self.base + j
        elif self.kind == "per_prompt_index":
            value = self.base + prompt_index * k + j
        elif self.kind == "per_sample":
            value = self.values[j]
        elif self.kind == "per_prompt":
            if prompt_index >= len(self.values):
                raise ValueError(f"seeds per_prompt has {len(self.values)} entries, but prompt {prompt_id!r} has "
                                 f"prompt index {prompt_index} (its position among the source's non-empty prompts)")
            value = self.values[prompt_index] + j
        else:
            if row is None or self.column not in row:
                present = sorted(row) if row is not None else []
                raise ValueError(f"seeds='source' reads column {self.column!r}, which prompt {prompt_id!r} lacks; "
                                 f"its columns: {present}")
            value = row[self.column]
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)  # CSV cells are strings
            value = _check_seed(value, f"seed column {self.column!r} of prompt {prompt_id!r}") + j
        return _check_seed(value, f"the seed of prompt {prompt_id!r} sample {j}")

    def rule(self) -> str:
        """The derivation as one human-readable formula (recorded in the run's provenance)."""
        k = self.samples_per_prompt
        if self.kind == "fixed":
            return f"seed = {self.base} + sample_index"
        if self.kind == "per_prompt_index":
            return f"seed = {self.base} + prompt_index * {k} + sample_index"
        if self.kind == "per_sample":
            return f"seed = {list(self.values)}[sample_index]"
        if self.kind == "per_prompt":
            return "seed = per_prompt[prompt_index] + sample_index"
        return f"seed = row[{self.column!r}] + sample_index"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.kind, "samples_per_prompt": self.samples_per_prompt,
                               "rule": self.rule(),
                               "prompt_index": "position among the source's non-empty prompts, before slicing"}
        if self.kind in ("fixed", "per_prompt_index"):
            out["base"] = self.base
        if self.kind in ("per_prompt", "per_sample"):
            out["values"] = list(self.values)
        if self.kind == "source":
            out["column"] = self.column
        return out
