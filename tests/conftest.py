"""Test-wide settings: never touch the network; one intra-op thread in every test process (CI runs two xdist
workers on 2 cores, and some tests compare two computations bit for bit, which holds only when float reductions run
in one order: with several threads `pytest -n 0` failed them)."""

import os

for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(1)

# Lightning gives its logger a StreamHandler bound to sys.stderr at import time. Imported first inside a test that
# captures output (capsys), that handler would keep the test's stream and write "I/O operation on closed file"
# tracebacks into every later test; imported here, it binds pytest's session-wide stream.
import lightning.pytorch  # noqa: E402,F401
