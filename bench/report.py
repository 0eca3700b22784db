"""Summaries, ratios, targets and the JSON and Markdown result files of a benchmark run.

Everything the Markdown shows is computed from the JSON document, so a result file can be
rendered again with `python -m bench.report RESULT.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.measure import ChildUsage
from scripts.kafka_local import KAFKA_VERSION

MB = 1_000_000
# Time is linear in the record count when the seconds per extra million records between the two
# largest sizes are at most this many times those between the two smallest. A fixed start-up
# cost makes small sizes look slow per record, so the marginal cost is compared, not the mean.
LINEAR_TOLERANCE = 1.25
TARGET_PARSE_RECORDS_PER_S = 2_000_000
TARGET_MEMORY_RECORDS = 5_000_000
TARGET_MEMORY_MIB = 400


@dataclass(frozen=True)
class Sample:
    """One measured run of one contender."""

    contender: str
    records: int
    value_bytes: int
    attempt: int
    usage: ChildUsage
    requests: int  # requests the local receiver got during the run
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        described = asdict(self)
        described["usage"]["cpu_seconds"] = self.usage.cpu_seconds
        return described


# --- environment ---------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Return the CPU model, core count, memory and kernel of this machine."""
    return {
        "cpu_model": _cpuinfo_field("model name"),
        "cores": os.cpu_count(),
        "memory_bytes": _meminfo_bytes("MemTotal"),
        "kernel": platform.release(),
        "system": platform.system(),
    }


def _cpuinfo_field(name: str) -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    found = re.search(rf"^{re.escape(name)}\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else None


def _meminfo_bytes(name: str) -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(rf"^{re.escape(name)}:\s*(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else None


def versions(kcat: str | None) -> dict[str, str | None]:
    """Return the versions of Python, the libraries, the Kafka broker and kcat."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("batchalert", "kafka-python", "polars", "pyarrow", "httpx"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["kafka_broker"] = KAFKA_VERSION
    found["kcat"] = _kcat_version(kcat)
    return found


def _kcat_version(kcat: str | None) -> str | None:
    if kcat is None:
        return None
    try:
        result = subprocess.run([kcat, "-V"], capture_output=True, text=True, timeout=10,
                                check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"^Version (.+)$", result.stdout + result.stderr, re.MULTILINE)
    return found.group(1).strip() if found else None


def source_digest(package_dir: Path) -> str:
    """Return a digest of the Python files under `package_dir`, to spot code that changed."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(str(path.relative_to(package_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# --- summaries -----------------------------------------------------------------------------------


def summarize(samples: list[Sample], titles: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Return the medians over repetitions for each contender and record count.

    `titles` maps a contender key to its letter and title.
    """
    keys = dict.fromkeys((s.contender, s.records) for s in samples)
    return [_summary([s for s in samples if (s.contender, s.records) == key], titles)
            for key in keys]


def _summary(runs: list[Sample], titles: dict[str, tuple[str, str]]) -> dict[str, Any]:
    first = runs[0]
    wall = statistics.median(r.usage.wall_seconds for r in runs)
    letter, title = titles[first.contender]
    return {
        "contender": first.contender,
        "letter": letter,
        "title": title,
        "records": first.records,
        "value_bytes": first.value_bytes,
        "runs": len(runs),
        "wall_seconds": wall,
        "wall_seconds_each": [r.usage.wall_seconds for r in runs],
        "cpu_seconds": statistics.median(r.usage.cpu_seconds for r in runs),
        "max_rss_bytes": statistics.median(r.usage.max_rss_bytes for r in runs),
        "max_rss_bytes_highest": max(r.usage.max_rss_bytes for r in runs),
        "broker_cpu_seconds": statistics.median(r.usage.broker_cpu_seconds for r in runs),
        "receiver_cpu_seconds": statistics.median(r.usage.receiver_cpu_seconds for r in runs),
        "other_cpu_seconds": statistics.median(r.usage.other_cpu_seconds for r in runs),
        "requests": statistics.median(r.requests for r in runs),
        "records_per_second": first.records / wall,
        "mb_per_second": first.value_bytes / MB / wall,
    }


def find_summary(summaries: list[dict[str, Any]], contender: str,
                 records: int) -> dict[str, Any] | None:
    """Return the summary of `contender` at `records`, or None when it was not measured."""
    for summary in summaries:
        if summary["contender"] == contender and summary["records"] == records:
            return summary
    return None


def wall_ratios(summaries: list[dict[str, Any]], records: int) -> dict[str, float | None]:
    """Return the wall-time ratios d/a, d/b and c/d at `records`."""
    wall = {}
    for key in ("kcat", "plain", "per-message", "batchalert"):
        summary = find_summary(summaries, key, records)
        wall[key] = summary["wall_seconds"] if summary else None

    def ratio(top: str, bottom: str) -> float | None:
        a, b = wall[top], wall[bottom]
        return a / b if a is not None and b else None

    ratios = {"d/a": ratio("batchalert", "kcat"), "d/b": ratio("batchalert", "plain"),
              "c/d": ratio("per-message", "batchalert")}
    # The work each approach adds to a plain kafka-python read: handler and POSTs for c, parsing,
    # aggregation and posting for d. None when d is not slower than b.
    extra_c, extra_d = _minus(wall["per-message"], wall["plain"]), _minus(wall["batchalert"],
                                                                           wall["plain"])
    ratios["(c-b)/(d-b)"] = extra_c / extra_d if extra_c is not None and extra_d else None
    return ratios


def _minus(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a <= b:
        return None
    return a - b


def scaling(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Fit wall seconds = fixed + per_record * records through batchalert's sizes."""
    ordered = sorted((s for s in summaries if s["contender"] == "batchalert"),
                     key=lambda s: s["records"])
    points = [{"records": s["records"], "wall_seconds": s["wall_seconds"],
               "seconds_per_million": s["wall_seconds"] / s["records"] * 1e6,
               "cpu_seconds": s.get("cpu_seconds"), "max_rss_bytes": s["max_rss_bytes_highest"],
               "other_cpu_seconds": s.get("other_cpu_seconds")} for s in ordered]
    result: dict[str, Any] = {"points": points}
    if len(points) < 2:
        return result
    xs = [float(p["records"]) for p in points]
    ys = [float(p["wall_seconds"]) for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs)
    fixed = mean_y - slope * mean_x
    residuals = [abs(fixed + slope * x - y) / y for x, y in zip(xs, ys, strict=True)]
    marginal = [(ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) * 1e6 for i in range(len(xs) - 1)]
    result.update(fixed_seconds=fixed, seconds_per_million=slope * 1e6,
                  max_relative_residual=max(residuals), marginal_seconds_per_million=marginal)
    if len(marginal) >= 2 and marginal[0] > 0:
        result["marginal_growth"] = marginal[-1] / marginal[0]
    return result


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare the measured figures with the project's targets; None means not measured."""
    ratios = results["ratios"]
    parse_rate = (results.get("parse_only") or {}).get("records_per_second")
    fit = results["scaling"]
    memory = next((p["max_rss_bytes"] / 1024 / 1024 for p in fit["points"]
                   if p["records"] == TARGET_MEMORY_RECORDS), None)
    growth = fit.get("marginal_growth")
    rows = [
        ("parse + rules + aggregation alone", ">= 2,000,000 records/s", parse_rate,
         None if parse_rate is None else parse_rate >= TARGET_PARSE_RECORDS_PER_S),
        ("(d) against the read limit (a)", "d/a <= 2", ratios["d/a"],
         None if ratios["d/a"] is None else ratios["d/a"] <= 2),
        ("(d) against plain kafka-python (b)", "d/b < 1", ratios["d/b"],
         None if ratios["d/b"] is None else ratios["d/b"] < 1),
        ("(d) against per-message (c)", "c/d >= 20", ratios["c/d"],
         None if ratios["c/d"] is None else ratios["c/d"] >= 20),
        ("wall time linear in records: s per extra million, largest sizes / smallest",
         f"<= {LINEAR_TOLERANCE}", growth, None if growth is None else growth <= LINEAR_TOLERANCE),
        ("peak memory of (d) at 5,000,000 records, MiB", "< 400", memory,
         None if memory is None else memory < TARGET_MEMORY_MIB),
    ]
    return [{"name": name, "target": target, "measured": measured, "met": met}
            for name, target, measured, met in rows]


# --- output files --------------------------------------------------------------------------------


def write_results(results: dict[str, Any], out_dir: Path, stamp: str) -> tuple[Path, Path]:
    """Write `<stamp>.json` and `<stamp>.md` into `out_dir` and return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stamp}.json"
    markdown_path = out_dir / f"{stamp}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    markdown_path.write_text(render_markdown(results))
    return json_path, markdown_path


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1024 / 1024:,.0f}"


def render_markdown(results: dict[str, Any]) -> str:
    """Render a result document as a Markdown page."""
    lines = [f"# batchalert benchmark, {results['started']}", "",
             f"Command: `{results['command']}`", ""]
    code = results.get("batchalert_source")
    if code and code["start"] != code["end"]:
        lines += ["**batchalert's source files changed during this run, so its repetitions may "
                  "have run different code.**", ""]
    lines += _environment_lines(results)
    lines += _contender_lines(results)
    lines += _scaling_lines(results)
    lines += _parse_only_lines(results.get("parse_only"))
    lines += _target_lines(results["targets"])
    return "\n".join(lines) + "\n"


def _environment_lines(results: dict[str, Any]) -> list[str]:
    machine, found, data = results["machine"], results["versions"], results["dataset"]
    memory = machine["memory_bytes"]
    statuses = data["statuses"]
    total_404 = statuses.get("404", 0)
    total_5xx = sum(count for code, count in statuses.items() if code.startswith("5"))
    return [
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{_mib(memory)} MiB memory, {machine['system']} {machine['kernel']}.", "",
        "Versions: " + ", ".join(f"{name} {value}" for name, value in found.items()) + ".", "",
        f"Data: {data['records']:,} records, {data['value_bytes'] / MB:,.1f} MB of values "
        f"in {results['partitions']} partitions; {total_404 / data['records']:.1%} 404 responses, "
        f"{total_5xx / data['records']:.1%} 5xx responses, "
        f"{data['non_access'] / data['records']:.1%} lines that are no access line, "
        f"{data['broken']:,} broken values (seed {data['seed']}).", "",
        "Job file of (d), with a fresh group per run: `" + json.dumps(results["job"]) + "`", "",
        f"Python start-up with batchalert's imports: {_number(results['startup']['seconds'])} s "
        f"and {_mib(results['startup']['max_rss_bytes'])} MiB peak RSS (included in the figures "
        f"of b, c and d).", "",
    ]


def _contender_lines(results: dict[str, Any]) -> list[str]:
    records = results["dataset"]["records"]
    rows = []
    for s in results["summaries"]:
        if s["records"] != records:
            continue
        rows.append([f"({s['letter']}) {s['title']}", str(s["runs"]), _number(s["wall_seconds"]),
                     f"{s['records_per_second']:,.0f}", _number(s["mb_per_second"], 1),
                     _number(s["cpu_seconds"]), _mib(s["max_rss_bytes"]),
                     _number(s["broker_cpu_seconds"]), _number(s["receiver_cpu_seconds"]),
                     f"{s['requests']:,.0f}", _number(s["other_cpu_seconds"])])
    headers = ["contender", "runs", "wall s", "records/s", "MB/s", "CPU s", "peak RSS MiB",
               "broker CPU s", "receiver CPU s", "POSTs", "other CPU s"]
    ratios = results["ratios"]
    return [f"## Contenders at {records:,} records (medians)", "", *_table(headers, rows), "",
            "CPU s is the contender's own process; the broker, the receiver (in the benchmark "
            "process) and other processes on the machine (not part of the benchmark) are "
            "listed apart. Wall times: " + _walls(results, records) + ".", "",
            f"Wall-time ratios: d/a = {_number(ratios['d/a'])}, d/b = {_number(ratios['d/b'])}, "
            f"c/d = {_number(ratios['c/d'])}. Time each adds to the plain read (b): "
            f"(c-b)/(d-b) = {_number(ratios['(c-b)/(d-b)'])}.", ""]


def _walls(results: dict[str, Any], records: int) -> str:
    parts = []
    for s in results["summaries"]:
        if s["records"] == records:
            each = ", ".join(f"{w:.2f}" for w in s["wall_seconds_each"])
            label = s["title"] if s["letter"] == "d*" else f"({s['letter']})"
            parts.append(f"{label} {each}")
    return "; ".join(parts)


def _scaling_lines(results: dict[str, Any]) -> list[str]:
    fit = results["scaling"]
    rows = [[f"{p['records']:,}", _number(p["wall_seconds"]), _number(p["seconds_per_million"]),
             _number(p.get("cpu_seconds")), _mib(p["max_rss_bytes"]),
             _number(p.get("other_cpu_seconds"))] for p in fit["points"]]
    headers = ["records", "wall s", "s per million", "CPU s", "peak RSS MiB (highest)",
               "other CPU s"]
    lines = ["## batchalert run by record count (medians)", "", *_table(headers, rows), ""]
    if "seconds_per_million" in fit:
        lines += [f"Least-squares line: {_number(fit['fixed_seconds'])} s + "
                  f"{_number(fit['seconds_per_million'])} s per million records; the largest "
                  f"deviation of a size from it is {fit['max_relative_residual']:.1%}. Seconds "
                  f"per extra million records between neighbouring sizes: "
                  + ", ".join(_number(m) for m in fit["marginal_seconds_per_million"]) + ".", ""]
    return lines


def _parse_only_lines(parse_only: dict[str, Any] | None) -> list[str]:
    if not parse_only:
        return []
    full = parse_only.get("full_parse")
    lines = [
        "## Parse, rules and aggregation on batches in memory", "",
        f"{parse_only['records']:,} records in batches of {parse_only['chunk_records']:,}, "
        f"{parse_only['repeat']} repetitions (medians). With the prefilter, as a job runs by "
        f"default: {_number(parse_only['seconds'])} s, "
        f"{parse_only['records_per_second']:,.0f} records/s "
        f"({parse_only['mb_per_second']:,.1f} MB/s), CPU {_number(parse_only['cpu_seconds'])} s.",
    ]
    if full:
        lines[-1] += (f" Parsing every record: {_number(full['seconds'])} s, "
                      f"{full['records_per_second']:,.0f} records/s, "
                      f"CPU {_number(full['cpu_seconds'])} s.")
    return [*lines, ""]


def _target_lines(rows: list[dict[str, Any]]) -> list[str]:
    table = []
    for row in rows:
        met = {True: "met", False: "not met", None: "not measured"}[row["met"]]
        measured = row["measured"]
        text = "n/a" if measured is None else (
            f"{measured:,.0f}" if measured >= 1000 else f"{measured:,.3g}")
        table.append([row["name"], row["target"], text, met])
    return ["## Targets", "", *_table(["figure", "target", "measured", "result"], table)]


def main(argv: Sequence[str] | None = None) -> int:
    """Render a result JSON file as Markdown on standard output."""
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description="Render a benchmark result file as Markdown.")
    parser.add_argument("result", type=Path, help="result JSON written by python -m bench.run")
    args = parser.parse_args(argv)
    results = json.loads(args.result.read_text())
    # The ratios, the fit and the targets are derived again, so a file written before a change
    # of their definitions renders with the current ones.
    results["ratios"] = wall_ratios(results["summaries"], results["dataset"]["records"])
    results["scaling"] = scaling(results["summaries"])
    results["targets"] = targets(results)
    sys.stdout.write(render_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
