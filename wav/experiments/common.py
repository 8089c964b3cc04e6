"""Shared machinery of the multi-seed experiments: the published-or-generated data, parallel seed jobs,
and reading run records back."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from wav.data.io import load_transitions, save_transitions
from wav.data.io import Transitions


def changed_fields(config) -> dict:
    """The fields of a config dataclass that differ from their defaults (a cache key built from these stays
    the same when a field is added later with a default that keeps the old behaviour)."""
    out = {}
    for f in dataclasses.fields(config):
        default = f.default if f.default is not dataclasses.MISSING else (f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        value = getattr(config, f.name)
        if default is dataclasses.MISSING or value != default:
            out[f.name] = value
    return out


DEVELOPMENT_SEED = 31_000
"""make-testset seed of the development policy set the benchmarks choose settings on (never a reported test set)"""


def development_set(folder: Path, per_action: int = 300) -> Transitions:
    """The development policy set (make-testset seed DEVELOPMENT_SEED, `per_action` transitions per action),
    generated once and cached in `folder`."""
    from wav.data.collect import make_testset

    return cached_transitions(Path(folder) / f"dev_{per_action}.npz", lambda: make_testset(per_action, None, DEVELOPMENT_SEED)[0])


def cached_transitions(path: Path, make: Callable[[], Transitions], given: str | None = None) -> Transitions:
    """A given file, else a cached generated one at `path` (generated and written atomically once)."""
    if given:
        return load_transitions(given)
    if path.exists():
        return load_transitions(path)
    tr = make()
    save_transitions(path, tr)
    return tr


_WATCHDOG: list[int] = []


def _watch_parent(parent: int) -> None:
    """In a worker process: end it as soon as the process that started the sweep is gone (a killed sweep
    leaves no worker behind to finish a run on its own)."""
    if _WATCHDOG or os.getpid() == parent:
        return
    _WATCHDOG.append(parent)

    def alive() -> bool:
        if os.getppid() != parent:  # re-parented: the sweep's process has exited
            return False
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return False
        return True

    def watch() -> None:
        while alive():
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="wav-parent-watchdog", daemon=True).start()


def _indexed(fn: Callable, i: int, job: tuple, parent: int) -> tuple[int, object]:
    _watch_parent(parent)
    return i, fn(*job)


def records(*run_dirs: Path) -> dict[str, bytes]:
    """The files a job wrote (every file of its run dirs), keyed by absolute path: what a Ray worker sends
    back to the driver, which writes them (`write_records`), so no shared filesystem is needed."""
    out = {}
    for d in run_dirs:
        for p in sorted(Path(d).rglob("*")) if Path(d).is_dir() else ([Path(d)] if Path(d).is_file() else []):
            if p.is_file():
                out[str(p.resolve())] = p.read_bytes()
    return out


def write_records(files: dict[str, bytes]) -> None:
    """Write a job's records on this machine (files already holding those bytes are left alone)."""
    from wav.data.io import atomic_write

    for path, data in files.items():
        p = Path(path)
        if p.is_file() and p.read_bytes() == data:
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, lambda tmp, data=data: Path(tmp).write_bytes(data))


def _remote_job(fn: Callable, job: tuple, shipped: dict[str, bytes]):
    """On a Ray worker: put the experiment's input files where the job reads them when this node does
    not have them (no shared filesystem), then run the job."""
    for path, data in shipped.items():
        if not Path(path).exists():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(data)
    return fn(*job)


def _host_port(address: str) -> tuple[str, int]:
    """'host:port', 'ray://host:port' or 'host' -> (host, port) with Ray's default ports."""
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    try:
        return host, int(port) if port else (10001 if client else 6379)
    except ValueError:
        raise ValueError(f"--ray-address {address!r}: expected host:port (e.g. 10.0.0.5:6379) or ray://host:port") from None


def connect_ray(address: str | None, timeout: float = 25.0) -> None:
    """Start or join Ray before any work: an address nobody answers at fails in one line, in < 30 s."""
    try:
        import ray
    except ImportError:
        raise ValueError("backend 'ray' needs Ray: pip install -c constraints.txt -e '.[ray]'") from None
    if ray.is_initialized():
        return
    if address and address not in ("auto", "local"):
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=min(timeout, 10.0)).close()
        except OSError as e:
            raise ValueError(f"--ray-address {address}: no Ray head answers at {host}:{port} ({e.strerror or e})") from None
    result: dict = {}

    def init() -> None:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as e:  # reported on the caller's thread
            result["error"] = e

    t = threading.Thread(target=init, name="wav-ray-init", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise ValueError(f"--ray-address {address}: Ray did not connect within {timeout:.0f} s")
    if "error" in result:
        raise ValueError(f"--ray-address {address}: {str(result['error']).splitlines()[0]}")


RUN_COST = {"uncertainty": 5, "ensemble": 4, "wav": 3, "wav-dense": 3, "wav-state": 3, "forward-first": 2}
"""relative cost of a strategy's run (1 when absent): parallel runs start with the longest, for better packing"""


def wave_plan(todo: Iterable[tuple[int, str]]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The two waves of a pool experiment's unfinished (seed, strategy) runs: (1) the (seed, part) fits, the
    seed-set world model of every seed first, then each inverse model (seconds to fit: they fill the worker
    slots an odd number of world-model fits leaves idle) and any other seed-set model that two or more of the
    seed's runs share; (2) the runs, costliest first (`RUN_COST`), each of which fits the seed-set models only it
    uses (an ensemble that one run uses: its long fit starts that run's long job early)."""
    from wav.acquire import make_strategy
    from wav.loop import shared_parts

    todo = list(todo)
    needs: dict[int, list] = {}
    for seed, s in todo:
        needs.setdefault(seed, []).append(make_strategy(s))
    fits = [(seed, part) for seed in needs for part in shared_parts(needs[seed])
            if part in ("world_model", "inverse", "dense_inverse") or sum(part in s.parts for s in needs[seed]) > 1]
    return sorted(fits, key=lambda f: f[1] != "world_model"), sorted(todo, key=lambda j: (-RUN_COST.get(j[1], 1), j[0]))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux: ru_maxrss in KiB), an upper bound for the jobs it ran."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_jobs(fn: Callable, jobs: Iterable[tuple], backend: str = "local", n_jobs: int = 2, ray_address: str | None = None,
             desc: str | None = None, ship: Iterable[Path] = ()) -> list:
    """Run fn(*job) for every job, in parallel processes (joblib) or on a Ray cluster; results in job
    order. With `desc`, a progress bar counts finished jobs.

    On Ray the files in `ship` (the experiment's inputs) travel with the jobs and are written on a node
    that lacks them, and a result's `records` (`records(...)`: the run files a job wrote) are written
    here by the driver: the cluster needs no shared filesystem."""
    from tqdm.auto import tqdm

    jobs = list(jobs)
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    if not jobs:  # a finished sweep rerun: nothing to run (joblib refuses n_jobs=0)
        return []
    bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=desc is None or not jobs)
    ticking = threading.Event()

    def tick() -> None:  # redraw the bar (its elapsed time) at least every 5 s while long jobs run
        while not ticking.wait(5.0):
            bar.refresh()

    if not bar.disable:
        threading.Thread(target=tick, name="wav-progress", daemon=True).start()
    results: list = [None] * len(jobs)
    try:
        if backend == "local" and (n_jobs == 1 or len(jobs) == 1):
            for i, j in enumerate(jobs):
                results[i] = fn(*j)
                bar.update()
        elif backend == "local":
            from joblib import Parallel, delayed

            par = Parallel(n_jobs=min(n_jobs, len(jobs)), backend="loky", return_as="generator_unordered")
            for i, r in par(delayed(_indexed)(fn, i, j, os.getpid()) for i, j in enumerate(jobs)):  # dispatched in job order
                results[i] = r
                bar.update()
        else:
            connect_ray(ray_address)
            import ray

            shipped = ray.put({str(Path(p).resolve()): Path(p).read_bytes() for p in ship if Path(p).is_file()})
            remote = ray.remote(num_cpus=1)(_remote_job)
            refs = [remote.remote(fn, j, shipped) for j in jobs]
            where = {ref: i for i, ref in enumerate(refs)}
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    results[where[ref]] = ray.get(ref)
                    if isinstance(results[where[ref]], dict):
                        write_records(results[where[ref]].get("records", {}))
                bar.update(len(done))
    finally:
        ticking.set()
        bar.close()
    return results


def file_sha1(path) -> str:
    """SHA-1 of a file's bytes (what a run's settings record of its input files)."""
    import hashlib

    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def strategy_bars(ax, strategies: dict, metric: str) -> None:
    """One bar per strategy of `strategies[name][metric]` with its 95% CI (`<metric>_ci`) as error bars; WAV in red."""
    names = list(strategies)
    vals = np.array([strategies[s].get(metric) if strategies[s].get(metric) is not None else np.nan for s in names], float)
    cis = np.array([[x if x is not None else np.nan for x in strategies[s].get(f"{metric}_ci", [np.nan, np.nan])] for s in names], float).reshape(-1, 2)
    err = np.nan_to_num(np.abs(np.stack([vals - cis[:, 0], cis[:, 1] - vals]))) if names else None
    ax.bar(range(len(names)), np.nan_to_num(vals), yerr=err, capsize=4, color=["#d62728" if s == "wav" else "#7f7f7f" for s in names])
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")


def write_report(out, results: dict, table: Callable[[dict], str], plot: Callable[[dict, Path], None]) -> dict:
    """An experiment's report files from its results: results.json, table.md and figure.png in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    (out / "table.md").write_text(table(results))
    plot(results, out / "figure.png")
    return results


def unfinished_by_seed(seeds, strategies, run_dir_of: Callable[[str, int], Path], progress: bool = True) -> dict[int, tuple[str, ...]]:
    """seed -> the strategies whose run of that seed is not done (seeds with none left are dropped); says on
    stderr how many finished runs a resume skips."""
    todo = {seed: tuple(s for s in strategies if not is_done(run_dir_of(s, seed))) for seed in seeds}
    todo = {seed: s for seed, s in todo.items() if s}
    total = len(seeds) * len(strategies)
    skipped = total - sum(len(s) for s in todo.values())
    if skipped and progress:
        print(f"resume: {skipped} of {total} runs already finished, skipped", file=sys.stderr)
    return todo


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / "done").exists()


def finite_or_none(obj):
    """A copy of a JSON-ready structure with NaN/inf floats replaced by None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: Path, obj) -> None:
    """Write strict JSON atomically."""
    from wav.data.io import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(finite_or_none(obj), indent=2)))


def scaled_schedule(cfg, n: int, sample_epochs: int):
    """`cfg` with epochs cut so that epochs x n stays near `sample_epochs` (at least 30 epochs, at most
    the preset's): the sweeps then spend about the same number of updates at every data size."""
    from dataclasses import replace

    return replace(cfg, epochs=min(cfg.epochs, max(30, -(-sample_epochs // max(n, 1)))))


def sample_efficiency(curves: dict, ref: str = "random", method: str = "wav") -> dict:
    """Labels `method` needs (mean curve, linear interpolation) to reach `ref`'s final mean error, and the ratio.

    Undefined (labels_needed None, with a `reason`) when `ref` ends no lower than it started: then any
    curve "reaches" its final error at once and a ratio would only measure that the reference got worse."""
    if ref not in curves or method not in curves:
        return {}
    target = curves[ref]["pred_error"][-1]
    x, y = np.array(curves[method]["acquired"], float), np.array(curves[method]["pred_error"], float)
    ref_labels = curves[ref]["acquired"][-1]
    if target >= curves[ref]["pred_error"][0]:
        return {"target_error": float(target), "labels_needed": None, "ref_labels": ref_labels, "ratio": None,
                "reason": f"{ref}'s error did not fall with more labels ({curves[ref]['pred_error'][0]:.3f} -> {target:.3f})"}
    hit = np.flatnonzero((y <= target) & (x > 0))  # conservative: the curve's first evaluated step counts whole
    if len(hit) == 0:
        return {"target_error": float(target), "labels_needed": None, "ref_labels": ref_labels, "ratio": None}
    i = hit[0]
    need = x[i] if i == 0 or x[i - 1] <= 0 else x[i - 1] + (x[i] - x[i - 1]) * (y[i - 1] - target) / (y[i - 1] - y[i])
    return {"target_error": float(target), "labels_needed": float(need), "ref_labels": ref_labels, "ratio": float(ref_labels / max(need, 1e-9))}


def efficiency_sentence(eff: dict, unit: str) -> list[str]:
    """The report's line on sample efficiency (`unit`: what the x axis counts)."""
    if not eff:
        return []
    if eff.get("labels_needed") is not None:
        return ["", f"wav reaches random's final error ({eff['target_error']:.3f} at {eff['ref_labels']} {unit}) after {eff['labels_needed']:.0f} "
                f"{unit} (mean curves, linear interpolation): {eff['ratio']:.2f}x sample efficiency."]
    if eff.get("reason"):
        return ["", f"Sample efficiency is undefined: {eff['reason']}."]
    return ["", f"wav does not reach random's final error ({eff['target_error']:.3f}) within the budget."]



def _flat(obj, prefix: str = "") -> dict[str, object]:
    """A nested JSON-ready dict as {"a.b.c": leaf}."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def normalised(settings: dict) -> dict:
    """Settings as they read back from config.json (tuples become lists, paths strings)."""
    return json.loads(json.dumps(settings, default=str))


def check_resume(expected: dict[Path, dict], force: bool = False, defaults: dict[str, object] | None = None) -> int:
    """Compare each finished run's recorded settings (config.json "settings") with what this invocation
    would run. A mismatch is refused with a one-line message naming the differing keys; with `force`
    those runs are marked unfinished and redone. Returns the number of finished runs that will be kept.

    A setting the record lacks is a config field added after the run was made; new fields default to the
    behaviour before them, so such runs are kept, and one stderr line names the fields. `defaults` names that
    behaviour per flat key ("a.b.c"): where this invocation asks a lacking setting for another value, the
    run is a mismatch like any other."""
    kept, stale, added, defaults = 0, [], set(), defaults or {}
    for run_dir, want in expected.items():
        if not is_done(run_dir):
            continue
        try:
            have = json.loads((Path(run_dir) / "config.json").read_text()).get("settings")
        except (OSError, ValueError):
            have = None
        want = normalised(want)
        if have == want:
            kept += 1
            continue
        a, b = _flat(have or {}), _flat(want)
        recorded = lambda k: k in a or k in defaults and b.get(k) != defaults[k]  # noqa: E731 (a lacking key counts when asked off its default)
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and recorded(k)) if have is not None else ["settings (not recorded)"]
        if not keys:
            kept += 1
            added |= set(b) - set(a)
            continue
        stale.append((Path(run_dir), keys, a, b))
    if added:
        print(f"resume: finished runs predate the settings {', '.join(sorted(added)[:6])}{' ...' if len(added) > 6 else ''}; "
              "kept as made with their defaults", file=sys.stderr)
    if stale and not force:
        run_dir, keys, a, b = stale[0]
        shown = ", ".join(f"{k}: {a.get(k, defaults.get(k))!r} -> {b.get(k)!r}" for k in keys[:4]) + (" ..." if len(keys) > 4 else "")
        raise ValueError(f"{len(stale)} finished run(s) were made with other settings (first: {run_dir}: {shown}); "
                         "use another --out, or --force to redo them")
    for run_dir, *_ in stale:
        (run_dir / "done").unlink(missing_ok=True)
    return kept
