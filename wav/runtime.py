"""Process-level settings shared by every entry point: thread counts, seeding helpers, versions."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import time

import numpy as np
import torch


def set_threads(n: int | None = None) -> int:
    """Give torch `n` intra-op threads (default: WAV_THREADS or min(cores, 2)); one inter-op thread.

    On a 2-core machine, torch's default over-subscribes and slows small-model training ~10x.
    """
    if n is None:
        n = int(os.environ.get("WAV_THREADS", min(os.cpu_count() or 1, 2)))
    torch.set_num_threads(max(1, n))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    return n


@contextlib.contextmanager
def one_thread():
    """Run the block on one torch thread (then restore the count): a fit's numbers must not depend on how
    many threads the process has (parallel reductions sum in another order and training drifts apart)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def package_versions() -> dict[str, str]:
    """Versions recorded in checkpoints and run configs, and the CPU: the same code and seed give the same
    numbers on one kind of CPU, but oneDNN picks its convolution kernels by CPU, so another CPU can move a
    trained model's error in the third digit (README, "The same sweep at commit d78b8dd")."""
    import wav

    out = {"python": platform.python_version(), "wav": wav.__version__, "torch": torch.__version__, "numpy": np.__version__}
    for name in ("gymnasium", "minigrid", "scipy"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # optional at import time
            pass
    out["cpu"] = cpu_description()
    return out


@functools.cache
def cpu_description() -> str:
    """The CPU as benchmarks record it: model name, cores, and the vector ISA torch's kernels use
    (timings differ ~2x between an AVX2 and an AVX-512 machine of the same core count)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        isa = "unknown ISA"
    return f"{name}, {os.cpu_count()} cores, torch kernels {isa}"


PROGRESS_SECONDS = 9.0
"""long work prints where it is at least this often (one stderr line)"""


class Progress:
    """`progress(lambda: "step 3/10, loss 0.1")` prints `<label>: step 3/10, loss 0.1, <elapsed> s` to stderr when
    `every` seconds have passed since the last line (or with force=True); the text is built only then."""

    def __init__(self, label: str, every: float = PROGRESS_SECONDS):
        self.label, self.every = label, every
        self.start = self.last = time.perf_counter()

    def __call__(self, text, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.last >= self.every:
            self.last = now
            print(f"{self.label}: {text() if callable(text) else text}, {now - self.start:.0f} s", file=sys.stderr, flush=True)
