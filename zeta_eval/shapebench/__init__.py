"""ShapeBench: the embedded benchmark of zeta_eval.

A small text-conditional pixel-space diffusion model (:mod:`.model`, trained by ``python -m
zeta_eval.shapebench.train``, exported by ``.export``, evaluated by ``.evaluate`` and ``.validation``) over the
ShapeBench world. The world and the prompt grammar are data that the libraries share, so they live in
``datamodules.shapebench`` (re-exported here); the oracle that judges images is ``metrics.shapebench``.
"""

from datamodules.shapebench import (BACKGROUND, COLORS, IMAGE_SIZE, PALETTE, RELATIONS, SHAPES, TASKS, evaluation_set,
                                    render, render_metadata, sample_training_caption, vocabulary)

__all__ = ["BACKGROUND", "COLORS", "IMAGE_SIZE", "PALETTE", "RELATIONS", "SHAPES", "TASKS", "evaluation_set",
           "render", "render_metadata", "sample_training_caption", "vocabulary"]
