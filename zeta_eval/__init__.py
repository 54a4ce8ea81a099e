"""zeta_eval: an evaluation pipeline for diffusion-model samplers.

The pieces: ``samplers`` (sampling math), ``datamodules`` (prompt sets), ``metrics`` (scores) and, here, the model
adapters, the LightningModule, the Parquet writer, the report and the command line (``python -m zeta_eval``).
"""

__version__ = "0.1.0"
