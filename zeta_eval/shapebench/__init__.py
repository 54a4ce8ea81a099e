"""ShapeBench: the embedded benchmark of zeta_eval.

A procedurally drawn world of flat coloured shapes (:mod:`.world`), GenEval-style prompts with a held-out evaluation
set (:mod:`.prompts`), and a small text-conditional pixel-space diffusion model (:mod:`.model`, trained by
``python -m zeta_eval.shapebench.train``). The oracle that judges images is ``metrics.shapebench``.
"""

from .prompts import TASKS, evaluation_set, sample_training_caption, vocabulary
from .world import BACKGROUND, COLORS, IMAGE_SIZE, PALETTE, RELATIONS, SHAPES, render, render_metadata

__all__ = ["BACKGROUND", "COLORS", "IMAGE_SIZE", "PALETTE", "RELATIONS", "SHAPES", "TASKS", "evaluation_set",
           "render", "render_metadata", "sample_training_caption", "vocabulary"]
