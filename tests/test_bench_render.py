"""bench/render.py against the committed, measured bench/results.json (no synthetic results).

The renderer's tables must state what the measured numbers say (ratios, met / not met against the
goals), the committed README section and plot must be the ones rendered from the committed results,
and ``--check`` must notice when either falls out of date. Runs in a second or two: no benchmark is run.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def load_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_render", BENCH / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_render()


def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((BENCH / "results.json").read_text())
    return document


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def test_committed_readme_and_plot_are_rendered_from_committed_results() -> None:
    """bench/README.md's generated section and bench/e2e.png match bench/results.json, a full run."""
    assert render.check(BENCH / "results.json", BENCH / "README.md", BENCH / "e2e.png") == []
    document = committed()
    assert document["run"]["mode"] == "full"
    for name in ("client", "webhook", "surrealdb", "deltalake", "clickhouse", "qdrant", "e2e"):
        assert name in document["benchmarks"], name


def test_goal_tables_state_the_measured_ratios_and_verdicts() -> None:
    document = committed()
    text = render.summary_markdown(document)
    b = {name: entry["data"] for name, entry in document["benchmarks"].items()}

    client = b["client"]
    r = client["ours_vs_raw_ratio"]
    assert f"| {r:.2f} | >= 0.9 | {verdict(r >= 0.9)} |" in text
    w = client["window32_vs_window1_ratio"]
    assert f"| {w:.2f}x | >= 2.5x | {verdict(w >= 2.5)} |" in text

    hook = b["webhook"]["ratio"]
    assert f"| {hook:.2f} | >= 0.8 | {verdict(hook >= 0.8)} |" in text

    sinks = (("SurrealDB", "surrealdb"), ("Delta Lake", "deltalake"), ("ClickHouse", "clickhouse"))
    for label, name in sinks:
        for batch, row in b[name]["by_batch_size"].items():
            # end to end (vs the raw-stub pipeline; the old floor as context), then the write path alone
            end_to_end, write_path = [x for x in text.splitlines() if x.startswith(f"| {label} | {batch} |")]
            e2e = row.get("runtime_over_raw_pipeline")
            if e2e is None:  # measured before the raw-stub floor existed
                assert "| - | not measured |" in end_to_end
            else:
                assert f"| {e2e:.2f} | {verdict(e2e >= 0.8)} |" in end_to_end
            if "runtime_over_direct" in row:
                assert f"| {row['runtime_over_direct']:.2f} |" in end_to_end
            path = row.get("write_path_over_direct", row.get("process_batch_over_direct"))
            assert write_path.endswith(f"| {path:.2f} | {verdict(path >= 0.8)} |")
    q = b["qdrant"]
    qdrant_line = next(x for x in text.splitlines() if x.startswith("| Qdrant |"))
    if q.get("raw_pipeline_rows_per_s"):
        q_ratio = q["sink_rows_per_s"] / q["raw_pipeline_rows_per_s"]
        assert f"| {q_ratio:.2f} | {verdict(q_ratio >= 0.8)} |" in qdrant_line
    else:
        assert "| not measured |" in qdrant_line
    assert f"| {q['sink_rows_per_s'] / q['direct_rows_per_s']:.2f} |" in qdrant_line


def test_end_to_end_section_reports_every_step_and_the_sustained_rate() -> None:
    document = committed()
    e2e = document["benchmarks"]["e2e"]["data"]
    text = render.summary_markdown(document)
    steps = e2e["steps"]
    step_rows = [x for x in text.splitlines() if x.startswith("| ") and x.endswith(("| yes |", "| no |"))]
    assert len(step_rows) == len(steps)
    assert [row.endswith("| yes |") for row in step_rows] == [s["sustained"] for s in steps]
    # the sustained rate is the highest sustained ramp/refine step (judged from the store after the run);
    # the overload step offers twice the highest rate the ramp saw sustained while running
    sustained = [s["rate"] for s in steps if s["sustained"] and s["kind"] != "overload"]
    assert e2e["sustained_rate_per_s"] == (max(sustained) if sustained else None)
    overload = [s for s in steps if s["kind"] == "overload"]
    assert overload == steps[-1:]
    live = [s["rate"] for s in steps if s["sustained_live"] and s["kind"] != "overload"]
    assert overload[0]["rate"] == 2 * (max(live) if live else e2e["settings"]["rates"][0])
    everything = [*steps, e2e["warm_up"]]
    lost = sum(s["lost"] for s in everything)
    accepted = sum(s["accepted"] for s in everything)
    assert f"| {lost} of {accepted:,} | 0 | {verdict(lost == 0)} |" in text
    # P4's floor: the raw-stub pipeline's sustained rate (the bare consumer's as context)
    floor_row = next(
        x for x in text.splitlines() if "vs the raw-stub pipeline at the same offered rates" in x
    )
    pipe = e2e.get("raw_pipeline_sustained_per_s")
    if pipe and e2e["sustained_rate_per_s"] is not None:
        r = e2e["sustained_rate_per_s"] / pipe
        assert floor_row.endswith(f"= {r:.2f}x | >= 0.8x | {verdict(r >= 0.8)} |")
    else:
        assert floor_row.endswith("| not measured |")
    if e2e.get("consumer_floor_per_s") and e2e["sustained_rate_per_s"] is not None:
        context = e2e["sustained_rate_per_s"] / e2e["consumer_floor_per_s"]
        assert any(x.startswith("| context") and f"= {context:.2f}x" in x for x in text.splitlines())


def test_check_notices_a_stale_readme_and_a_stale_plot(tmp_path: Path) -> None:
    for name in ("results.json", "README.md", "e2e.png"):
        shutil.copy(BENCH / name, tmp_path / name)
    results, readme, plot = tmp_path / "results.json", tmp_path / "README.md", tmp_path / "e2e.png"
    assert render.check(results, readme, plot) == []

    # a hand edit inside the generated section
    text = readme.read_text()
    section = render.current_section(text)
    assert section is not None
    readme.write_text(text.replace(section, section.replace("## Summary", "## Summary (edited)", 1)))
    problems = render.check(results, readme, plot)
    assert len(problems) == 1 and "generated section differs" in problems[0]

    # results.json changed without re-rendering: both the section and the plot are stale
    readme.write_text(text)
    document = json.loads(results.read_text())
    document["run"]["finished"] = "2000-01-01T00:00:00Z"
    results.write_text(json.dumps(document, indent=2) + "\n")
    problems = render.check(results, readme, plot)
    assert len(problems) == 2
    assert "generated section differs" in problems[0]
    assert "drawn from another results.json" in problems[1]


def test_replacing_the_section_keeps_the_hand_written_text() -> None:
    document = committed()
    section = render.summary_markdown(document)
    hand_written = "# Benchmarks\n\nIntro.\n\n## Embedded broker\n\nMeasured explanation.\n"
    inserted = render.replace_section(hand_written, section)
    tail = "\n\n## Embedded broker\n\nMeasured explanation.\n"
    assert inserted == "# Benchmarks\n\nIntro.\n\n" + section + tail
    outdated = inserted.replace(section, f"{render.BEGIN}\nold\n{render.END}")
    assert render.replace_section(outdated, section) == inserted


def test_check_command_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, str(BENCH / "render.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    readme = tmp_path / "README.md"
    readme.write_text((BENCH / "README.md").read_text().replace(render.END, "edited by hand\n" + render.END))
    stale = subprocess.run(
        [sys.executable, str(BENCH / "render.py"), "--check", "--readme", str(readme),
         "--plot", str(BENCH / "e2e.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert stale.returncode == 1
    assert "generated section differs" in stale.stderr
