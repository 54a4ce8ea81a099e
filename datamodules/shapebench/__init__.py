"""ShapeBench's world and prompt grammar: the embedded benchmark's data, numpy only.

A procedurally drawn world of flat coloured shapes (:mod:`.world`) and GenEval-style prompts with a held-out
evaluation set and the training-caption distribution (:mod:`.prompts`).

Why here: both libraries need them. ``datamodules`` serves the evaluation set as the ``shapebench`` prompt source,
and the oracle in ``metrics.shapebench`` judges an image against the same world (palette, shape templates, tasks);
``metrics`` may import ``datamodules``, never the application ``zeta_eval``. The application keeps what is not
data: the model, its training, export and evaluation scripts (``zeta_eval.shapebench``).
"""

from .prompts import TASKS, evaluation_set, sample_training_caption, vocabulary
from .world import BACKGROUND, COLORS, IMAGE_SIZE, PALETTE, RELATIONS, SHAPES, render, render_metadata

__all__ = ["BACKGROUND", "COLORS", "IMAGE_SIZE", "PALETTE", "RELATIONS", "SHAPES", "TASKS", "evaluation_set",
           "render", "render_metadata", "sample_training_caption", "vocabulary"]
