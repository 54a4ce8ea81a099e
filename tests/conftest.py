"""Test-wide settings: never touch the network; one thread per xdist worker (CI runs two workers on 2 cores)."""

import os

for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("OMP_NUM_THREADS") == "1":
    torch.set_num_threads(1)

# Lightning gives its logger a StreamHandler bound to sys.stderr at import time. Imported first inside a test that
# captures output (capsys), that handler would keep the test's stream and write "I/O operation on closed file"
# tracebacks into every later test; imported here, it binds pytest's session-wide stream.
import lightning.pytorch  # noqa: E402,F401
