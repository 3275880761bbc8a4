"""Results as JSON (everything, every repetition) and a markdown table (the medians)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write(results: dict) -> tuple[Path, Path, str]:
    """Write ``bench-<stamp>.json`` / ``.md`` and ``latest.*`` copies; return the paths and text."""
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = "bench-" + results["meta"]["stamp"] + ("-quick" if results["meta"]["quick"] else "")
    text = markdown(results)
    payload = json.dumps(results, indent=1)
    for name in (stem, "latest"):
        (RESULTS_DIR / f"{name}.json").write_text(payload)
        (RESULTS_DIR / f"{name}.md").write_text(text)
    return RESULTS_DIR / f"{stem}.json", RESULTS_DIR / f"{stem}.md", text


def markdown(results: dict) -> str:
    m = results["meta"]
    lines = [
        f"# streamdag benchmarks, {m['stamp']}",
        "",
        f"{'QUICK subset, ' if m['quick'] else ''}data {m['data']}, "
        f"workers {','.join(map(str, m['workers']))}, {m['reps']} reps (median), {m['cpus']} CPUs, "
        f"Python {m['python']}, " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"commit {m['commit']}; data {m['data_root']}",
    ]
    for w in results["workloads"]:
        lines += [
            "",
            f"## {w['name']} {w['title']}" + _workers(w),
            "",
            f"Throughput in {w['unit']}/s over a full epoch; ratio = throughput / {w['reference']}.",
            "",
            "| contender | role | throughput/s | ratio | first batch | CPU/item (cores) "
            "| peak mem (PSS) | spread | others' load | status |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        lines += [_row(r) for r in w["contenders"]]
        for r in w["contenders"]:
            if r.get("vs"):
                vs = ", ".join(f"{v:.2f}x {k}" for k, v in r["vs"].items())
                lines += ["", f"{r['name']}: {vs}"]
    for t in results["scaling"]:
        lines += _scaling(t)
    if results.get("packing"):
        lines += _packing(results["packing"])
    return "\n".join(lines) + "\n"


def _workers(w: dict) -> str:
    return "" if w["workers"] is None else f", {w['workers']} workers"


def _scaling(t: dict) -> list[str]:
    """One row per contender: throughput (scaling efficiency) at each worker count."""
    counts = t["workers"]
    lines = [
        "",
        f"## {t['name']} scaling",
        "",
        f"{t['unit']}/s over the epoch (efficiency = throughput at N / at {counts[0]} "
        f"/ (N / {counts[0]})); then the rate after the first batch (its efficiency), "
        "which leaves worker start-up out",
        "",
        "| contender | " + " | ".join(f"{n} workers" for n in counts) + " |",
        "|---|" + "---:|" * len(counts),
    ]
    for name, per in t["rows"].items():
        cells = [_scaling_cell(c) for c in per.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _packing(p: dict) -> list[str]:
    """W6's pack figures: bfd alone, and concat's CPU over tokenization."""
    lines = ["", "## W6 pack(2048) alone, in process (median of up to 3 runs)", ""]
    if p["status"] != "ok":
        return lines + [f"error: {p['reason']}"]
    lines += [
        "| strategy | input | documents | seconds | CPU s | rows | padding efficiency |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| bfd, buffer 1024 | {b['input']} | {b['docs']:,} | {b['seconds']:.2f} | "
        f"{b['cpu_s']:.2f} | {b['rows']:,} | {b['efficiency']:.2%} |"
        for b in p["bfd"]
    ]
    c = p["concat"]
    return lines + [
        "",
        f"concat: tokenize {c['tokenize_cpu_s']:.2f} CPU s over {c['docs']:,} documents, "
        f"pack(2048) over its output {c['pack_cpu_s']:.2f} CPU s: +{c['overhead']:.1%}",
    ]


def _row(r: dict) -> str:
    role = r["role"] + (f" x{r['scale']}" if r["scale"] > 1 else "")
    status = r["status"] + (f": {r['reason']}" if r.get("reason") else "")
    status = status.replace("|", "/").replace("\n", " ")
    if "throughput" not in r:
        return f"| {r['name']} | {role} | - | - | - | - | - | - | - | {status} |"
    ratio = f"{r['ratio']:.3f}x" if "ratio" in r else "n/a"
    return (
        f"| {r['name']} | {role} | {_si(r['throughput'])} | {ratio} | {_secs(r['ttfb'])} | "
        f"{_secs(r['cpu_per_item'])} ({r['cores']:.2f}) | {r['peak_mem_mb']:.0f} MB | "
        f"{r['spread'] * 100:.1f}% | {r['others_load']:.2f} | {status} |"
    )


def _si(x: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _secs(s: float) -> str:
    """Three significant digits, in the unit that keeps them below 1000."""
    for scale, unit in ((1e6, "µs"), (1e3, "ms")):
        if s * scale < 999.5:
            return f"{s * scale:.3g} {unit}"
    return f"{s:.2f} s"


def _scaling_cell(c: dict) -> str:
    if c["throughput"] is None:
        return "-"
    epoch = _rate(c["throughput"], c["efficiency"])
    return f"{epoch}; {_rate(c['after_first'], c['after_first_efficiency'])}"


def _rate(rate: float | None, efficiency: float | None) -> str:
    if rate is None:
        return "-"
    eff = "n/a" if efficiency is None else f"{efficiency:.2f}"
    return f"{_si(rate)} ({eff})"
