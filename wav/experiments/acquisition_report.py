"""The acquisition experiment's table and figure (wav.experiments.acquisition), drawn only from its
results.json content, next to the published values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wav.data.io import atomic_write
from wav.experiments.common import efficiency_sentence

PUBLISHED = {  # REFERENCE §4, read off the published figure (~)
    "random": {"pred_error": 2.00, "afs": 0.23},
    "uncertainty": {"pred_error": 1.57, "afs": 0.40, "spearman": 0.40, "kendall": 0.28},
    "progress": {"pred_error": 1.52, "afs": 0.41, "spearman": 0.62, "kendall": 0.445},
    "wav": {"pred_error": 1.31, "afs": 0.47, "spearman": 0.885, "kendall": 0.83},
    "oracle": {"pred_error": 1.29, "afs": 0.53, "spearman": 1.0, "kendall": 1.0},
}



def _fmt(entry: dict, m: str, digits: int = 3) -> str:
    v, ci = entry.get(m), entry.get(f"{m}_ci")
    if v is None or not np.isfinite(v):
        return "—"
    mark = "*" if m in entry.get("clipped", ()) else ""
    return f"{v:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]{mark}"


def markdown_table(results: dict) -> str:
    lines = [
        f"Acquisition (pool protocol), {results['n_seeds']} seeds, preset `{results['preset']}`, world model `{results.get('models')}`, "
        f"test set {'overlapping' if results.get('test_overlap') else 'excluding'} the pool: mean [95% CI]; published values in parentheses.",
        "",
        "| strategy | prediction error ↓ | dynamic accuracy ↑ | AFS ↑ | Spearman ↑ | Kendall ↑ | wav − X error (p) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, e in results["strategies"].items():
        pub = PUBLISHED.get(s, {})
        pd = results["paired_wav_minus"].get(s, {}).get("pred_error")
        diff = f"{pd['mean']:+.3f} (p={pd['p_ttest']:.3g})" if pd else "—"
        cells = [_fmt(e, "pred_error") + (f" ({pub['pred_error']})" if "pred_error" in pub else ""), _fmt(e, "dynamic_accuracy"),
                 _fmt(e, "afs") + (f" ({pub['afs']})" if "afs" in pub else ""), _fmt(e, "spearman") + (f" ({pub['spearman']})" if "spearman" in pub else ""),
                 _fmt(e, "kendall") + (f" ({pub['kendall']})" if "kendall" in pub else ""), diff]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    for key in sorted({k for e in results["strategies"].values() for k in e if k.endswith("/pred_error") and not k.endswith("_ci")}):
        name = key.split("/")[0]
        lines += ["", f"The same runs on the second test set `{name}` (excludes every transition of the pool):", "",
                  "| strategy | prediction error ↓ | dynamic accuracy ↑ | wav − X error (p) |", "|---|---|---|---|"]
        for s, e in results["strategies"].items():
            pd = results["paired_wav_minus"].get(s, {}).get(key)
            diff = f"{pd['mean']:+.3f} (p={pd['p_ttest']:.3g})" if pd else "—"
            lines.append(f"| {s} | {_fmt(e, key)} | {_fmt(e, name + '/dynamic_accuracy')} | {diff} |")
    if any(e.get("clipped") for e in results["strategies"].values()):
        lines += ["", f"\\* the 95% t-interval left the metric's possible range (few seeds: {results['n_seeds']}) and is clipped to it."]
    lines += efficiency_sentence(results.get("sample_efficiency") or {}, "acquired labels")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Bars with 95% CIs for error, AFS and rank correlation (like the published figure) + error vs labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strat = list(results["strategies"])
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for ax, (m, title) in zip(axes[:3], [("pred_error", "prediction error ↓"), ("afs", "action following score ↑"), ("spearman", "Spearman ρ with oracle ↑")]):
        vals = [results["strategies"][s].get(m, np.nan) for s in strat]
        cis = [results["strategies"][s].get(f"{m}_ci", [np.nan, np.nan]) for s in strat]
        err = np.array([[v - lo, hi - v] for v, (lo, hi) in zip(vals, cis)]).T
        ax.bar(range(len(strat)), vals, yerr=np.nan_to_num(err), capsize=4, color=["#d62728" if s == "wav" else "#7f7f7f" for s in strat],
               label="mean over seeds, 95% CI" + (" (clipped to range)" if any(m in results["strategies"][s].get("clipped", ()) for s in strat) else ""))
        ax.set_xticks(range(len(strat)), strat, rotation=30, ha="right")
        ax.set_title(title)
        ax.set_ylabel(title.rstrip(" ↑↓"))
        ax.legend(fontsize=7)
    ax = axes[3]
    for s, c in results.get("curves", {}).items():
        x = np.array(c["labels"])
        y = np.array(c["pred_error"])
        lo, hi = np.array(c["ci"]).T
        ax.plot(x, y, marker="o", label=s)
        ax.fill_between(x, lo, hi, alpha=0.15)
    ax.set_xlabel("labelled transitions")
    ax.set_ylabel("prediction error")
    ax.set_title("prediction error vs labels")
    ax.legend(fontsize=7)
    fig.suptitle(f"Acquisition, {results['n_seeds']} seeds (95% CI)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
