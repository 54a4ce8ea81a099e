"""The unit of work: one prompt with one seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PromptRecord:
    """One (prompt, seed) item of a benchmark.

    Attributes:
        prompt_set: name of the prompt set (short name, hub id or file name) - part of every sample id.
        prompt_id: stable id of the prompt within the set (the source's id column, else the row index).
        prompt: the prompt text, verbatim.
        seed: seed of this sample's initial latent.
        sample_index: index of this sample among the prompt's samples (0 .. samples_per_prompt - 1).
        meta: the source row's other fields, verbatim (category, GenEval tag/include/exclude, ...); JSON-serialisable.
    """

    prompt_set: str
    prompt_id: str
    prompt: str
    seed: int
    sample_index: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
