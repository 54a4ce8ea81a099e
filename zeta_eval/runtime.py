"""Runtime switches of an evaluation: ``model.compile`` (options, and the warm-up that keeps compilation out of the
timed calls) and ``layout_invariant`` (layout-independent kernels); and the trainer a module runs under."""

from __future__ import annotations

import os
import time
import weakref
from typing import Any, Sequence

import torch
from lightning.pytorch import LightningModule


#: torch.compile's modes
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def attached_trainer(module: LightningModule) -> Any:
    """The trainer running ``module``, or None when it runs alone (tests, notebooks): Lightning's public ``trainer``
    property raises then."""
    try:
        return module.trainer
    except RuntimeError:
        return None


def compile_options(value: Any) -> dict[str, Any] | None:
    """``model.compile`` as :meth:`ModelAdapter.compile_network` options (None: off)."""
    if value is None or value is False:
        return None
    options = {} if value is True else {"mode": value} if isinstance(value, str) else value
    if not isinstance(options, dict) or set(options) - {"mode", "backend", "channels_last"}:
        raise ValueError(f"model.compile must be true, false, a mode ({', '.join(COMPILE_MODES)}) or a mapping with "
                         f"mode, backend and channels_last; got {value!r}")
    options = {"mode": "default", "backend": "inductor", "channels_last": None, **options}
    if options["mode"] not in COMPILE_MODES:
        raise ValueError(f"model.compile mode must be one of {', '.join(COMPILE_MODES)}; got {options['mode']!r}")
    if not isinstance(options["backend"], str) or not options["backend"]:
        raise ValueError(f"model.compile backend must be a torch.compile backend name; got {options['backend']!r}")
    if options["channels_last"] not in (None, True, False):
        raise ValueError(f"model.compile channels_last must be true, false or null (auto); got "
                         f"{options['channels_last']!r}")
    return options


#: per compiled network and (mode, backend): the input signatures it has compiled for in this process. torch.compile
#: keeps what it compiled with the network's code, so a later run on the same network (a benchmark's repeats) does
#: not compile again and needs no warm-up
_WARM_SIGNATURES: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, set]]" = weakref.WeakKeyDictionary()


class CompileWarmUp:
    """A denoiser whose network is compiled: the first call for each input signature (latent shape and dtype,
    branches, integer or real timestep) compiles the network for that shape. That call is made once beforehand,
    its output discarded, and its time summed in ``seconds``, so that the sampler's own call is timed as every other
    (the network is deterministic: both calls return the same values)."""

    def __init__(self, denoiser: Any, signatures: set, device: torch.device):
        self.denoiser, self.signatures, self.device = denoiser, signatures, device
        self.seconds = 0.0

    def __call__(self, x: torch.Tensor, t: float, branches: Sequence[str]) -> tuple[torch.Tensor, ...]:
        signature = (tuple(x.shape), x.dtype, tuple(branches), float(t).is_integer())
        if signature not in self.signatures:
            self._sync()
            start = time.perf_counter()
            self.denoiser(x, t, branches)
            self._sync()
            self.seconds += time.perf_counter() - start
            self.signatures.add(signature)
        return self.denoiser(x, t, branches)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def use_layout_independent_kernels(device: torch.device) -> None:
    """What ``layout_invariant`` needs besides evaluating each sample alone: kernels that reduce in the same order in
    every process, whatever the rank count.

    CPU kernels split reductions over the intra-op threads, and Lightning gives each of R DDP ranks ``cores // R``
    threads when ``OMP_NUM_THREADS`` is unset, so one process and two ranks round differently (1/255 on a pixel now
    and then). The thread count is therefore pinned to ``OMP_NUM_THREADS``, default 1 (use more ranks to use more
    cores). On CUDA, cuBLAS needs a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, read when its first handle is made)
    and cuDNN its deterministic algorithms without autotuning; ``torch.use_deterministic_algorithms`` covers the rest
    (warn-only: an operation without a deterministic kernel warns instead of stopping a long run).
    """
    requested = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(requested) if requested.isdigit() and int(requested) > 0 else 1)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def compile_warm_up(denoiser: Any, network: torch.nn.Module, options: dict[str, Any],
                    device: torch.device) -> CompileWarmUp:
    """``denoiser`` behind the compile warm-up of ``network`` compiled with ``options`` (:func:`compile_options`)."""
    settings = (options["mode"], options["backend"])
    return CompileWarmUp(denoiser, _WARM_SIGNATURES.setdefault(network, {}).setdefault(settings, set()), device)
