"""Which dtype a real-size benchmark runs in on this machine, and the words that say so beside its figures.

bfloat16 halves the memory of float32, and on CPUs with bf16 units (AVX-512 BF16, AMX, Arm's BF16 extension) it is
also faster. Where the processor lacks them (AVX2-only x86, many laptops and cluster login nodes) PyTorch emulates
bfloat16 matmuls at a small fraction of the float32 rate (43x slower was measured on an AVX2 EPYC), so a benchmark
or a check whose cost was measured in native bfloat16 takes over ten times longer there, and ratios measured in
emulated bfloat16 are not comparable with native ones.

So the CPU default is measured, not assumed: :func:`bf16_speedup` times one matrix product in each dtype (a few
milliseconds), and :func:`default_dtype` picks bfloat16 only where it runs at least half as fast as float32 (native
units run it 1.5-4x *faster*; emulation runs it 10-50x slower, so the threshold is far from both). CUDA keeps
float16. The result honours everything that changes the kernels used (``ATEN_CPU_CAPABILITY``,
``ONEDNN_MAX_CPU_ISA``, the thread count), which a look at the processor's flags would not.
"""

from __future__ import annotations

import functools
import time

import torch

#: bfloat16 counts as native on a CPU when its matmul runs at least this fraction of float32's speed.
NATIVE_BF16_MIN_SPEEDUP = 0.5


def _matmul_seconds(dtype: torch.dtype, size: int, repeats: int) -> float:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dtype)
    b = torch.randn(size, size, generator=gen).to(dtype)
    a @ b  # first call: kernel selection, allocation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return best


@functools.lru_cache(maxsize=None)
def bf16_speedup(size: int = 256, repeats: int = 5) -> float:
    """float32 time / bfloat16 time of one ``size`` x ``size`` matmul on this CPU, best of ``repeats`` (> 1: faster)."""
    return _matmul_seconds(torch.float32, size, repeats) / _matmul_seconds(torch.bfloat16, size, repeats)


def cpu_capability() -> str:
    """PyTorch's CPU kernel level (``AVX512``, ``AVX2``, ``DEFAULT``, ...), as this process dispatches."""
    return str(torch.backends.cpu.get_cpu_capability())


def default_dtype(device: torch.device | str) -> torch.dtype:
    """float16 on CUDA; on CPU bfloat16 where it is native (see the module docstring), float32 where it is emulated."""
    if torch.device(device).type == "cuda":
        return torch.float16
    return torch.bfloat16 if bf16_speedup() >= NATIVE_BF16_MIN_SPEEDUP else torch.float32


def resolve_dtype(name: str | None, device: torch.device | str) -> torch.dtype:
    """``--dtype NAME`` if given, else :func:`default_dtype`."""
    return getattr(torch, name) if name else default_dtype(device)


def describe(device: torch.device | str, dtype: torch.dtype) -> dict:
    """What ran, for the JSON of a benchmark: device, dtype and, on CPU, the capability and the bf16 speed ratio."""
    device = torch.device(device)
    info = {"device": device.type, "dtype": str(dtype).removeprefix("torch.")}
    if device.type == "cpu":
        speedup = bf16_speedup()
        info.update(cpu_capability=cpu_capability(), bf16_speedup=round(speedup, 2),
                    bf16_native=speedup >= NATIVE_BF16_MIN_SPEEDUP, threads=torch.get_num_threads())
    elif device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def banner(device: torch.device | str, dtype: torch.dtype) -> str:
    """One line to print beside a benchmark's figures, e.g. ``CPU AVX2, float32 (bfloat16 emulated: 0.02x float32)``."""
    info = describe(device, dtype)
    if info["device"] != "cpu":
        return f"{info.get('gpu', info['device'])}, {info['dtype']}"
    native = "native" if info["bf16_native"] else "emulated"
    return (f"CPU {info['cpu_capability']}, {info['threads']} thread(s), {info['dtype']} "
            f"(bfloat16 {native}: its matmul runs {info['bf16_speedup']:g}x float32's speed)")
