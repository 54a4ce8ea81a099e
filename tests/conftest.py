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


# ---------------------------------------------------------------------------------------------- the time guard
# CI has 90 minutes for a fresh install plus the whole suite on 2 cores. One test that grows (a real-size model in an
# emulated dtype took > 15 minutes on an AVX2-only CPU) must fail loudly the first time it happens, not by running CI
# out of time: a test whose setup + call + teardown takes longer than this share of the budget fails the session,
# naming it. ZETA_EVAL_TEST_MAX_SECONDS overrides the limit (0 turns the guard off, e.g. for a deliberately slow run).
CI_BUDGET_SECONDS = 90 * 60
MAX_TEST_SHARE = 1 / 18  # 300 s
_durations: dict[str, float] = {}


def max_test_seconds() -> float:
    value = os.environ.get("ZETA_EVAL_TEST_MAX_SECONDS")
    return float(value) if value else CI_BUDGET_SECONDS * MAX_TEST_SHARE


def pytest_runtest_logreport(report):  # on the xdist controller too: it receives every worker's reports
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def over_budget(durations: dict[str, float], limit: float) -> list[str]:
    """The tests that took longer than ``limit`` seconds, slowest first, as report lines."""
    if limit <= 0:
        return []
    slow = sorted(((d, n) for n, d in durations.items() if d > limit), reverse=True)
    return [f"{n} took {d:.1f} s, over the {limit:g} s a test may take ({MAX_TEST_SHARE:.1%} of CI's "
            f"{CI_BUDGET_SECONDS // 60} minutes; tests/conftest.py)" for d, n in slow]


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller judges
        return
    lines = over_budget(_durations, max_test_seconds())
    if lines:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for line in lines:
            (reporter.write_line if reporter else print)(f"TIME GUARD: {line}")
        if session.exitstatus == 0:
            session.exitstatus = 1
