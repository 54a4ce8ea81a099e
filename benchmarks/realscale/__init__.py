"""Real-size architectures with random weights (no downloads) for the CPU benchmarks, the GPU suite and the
real-size end-to-end check. See models.py (builders), scorers.py (the metrics on real-size networks), inmemory.py
(adapters for ``zeta_eval predict`` on a pipeline built in this process) and check.py."""
