"""Smoke tests of ``loadtest/bench.py``: real processes, a tiny size, the report's shape.

The benchmark measures; these tests check behaviour only (the JSON line is complete and
self-consistent, every task is fulfilled, children are gone afterwards), never timings.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "loadtest" / "bench.py"
# The agent's workers without Leases: with them the second worker settles after joining
# (half a lease duration) before the pod is ready, which only lengthens a smoke test. The
# first test keeps the bench's defaults.
NO_LEASES = ("--agent-arg=--membership", "--agent-arg=none")


def _bench(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


def test_busy_by_process_is_each_process_share_of_a_core_busiest_first() -> None:
    busy_by_process = _bench_module().busy_by_process
    before = {10: 1.0, 11: 0.5, 12: 4.0}
    # 10 used 1 s and 11 0.25 s of the 2 s; 12 nothing; 13 started meanwhile and used 0.5 s;
    # 14 (a helper process) 0.002 s, under half a per cent of a core: left out.
    after = {10: 2.0, 11: 0.75, 12: 4.0, 13: 0.5, 14: 0.002}
    assert busy_by_process(before, after, seconds=2.0) == [0.5, 0.25, 0.12]
    assert busy_by_process(before, after, seconds=0.0) == []


def _ordered(latency: dict[str, float]) -> None:
    assert set(latency) == {"min", "p50", "p99", "max"}
    assert 0 < latency["min"] <= latency["p50"] <= latency["p99"] <= latency["max"]


def test_small_run_reports_every_field_consistently(tmp_path: Path) -> None:
    done = _bench(
        "--tasks",
        "200",
        "--tasksets",
        "4",
        "--concurrency",
        "20",
        "--light-iterations",
        "5",
        "--repetitions",
        "1",
        "--single-tasks",
        "20",
        "--report-dir",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    report: dict[str, Any] = json.loads(lines[0])

    assert report["tasks"] == 200 and report["tasksets"] == 4
    assert report["concurrency"] == 20 and report["agent_workers"] == 20
    assert report["argo_defaults"] is False
    assert report["fulfilled"] == 200
    assert report["results"] == {"Succeeded": 200}
    assert "failure_samples" not in report
    assert report["patched_nodes"] == 200  # the agent's own counter agrees
    assert 1 <= report["patches"] <= 200

    assert report["seconds"] > 0 and report["tasks_per_s"] > 0
    # seconds is rounded to 1 ms: allow for that rounding (runs here take ~50 ms).
    seconds = report["seconds"]
    assert 200 / (seconds + 0.0005) - 0.1 <= report["tasks_per_s"]
    assert report["tasks_per_s"] <= 200 / max(seconds - 0.0005, 1e-9) + 0.1
    assert report["raw_aiohttp_rps"] > 0 and report["raw_failures"] == 0
    assert report["ratio"] > 0
    assert report["ratio"] == pytest.approx(
        report["tasks_per_s"] / report["raw_aiohttp_rps"], rel=0.01
    )
    _ordered(report["latency_ms"])
    assert report["agent_cpu_s"] >= 0
    assert report["agent_peak_rss_mib"] > 10  # a Python process with its imports
    # PSS counts shared pages once: never above the sum of the processes' RSS peaks.
    assert 10 < report["agent_peak_pss_mib"] <= report["agent_peak_rss_mib"] + 1
    assert set(report["other_cpu_s"]) == {"simulator", "target", "bench"}

    # The rig's CPU per task beside the agent's (simulator, target, this process).
    assert set(report["rig_cpu_us_per_task"]) == {"simulator", "target", "bench"}
    assert report["watch_events_decoded"] <= report["watch_events"]

    # The second shape, one task per taskset: its own figures, counters of its phase only.
    single = report["one_task_per_taskset"]
    assert single["tasks"] == 20 and single["tasksets"] == 20
    assert single["fulfilled"] == 20 and single["results"] == {"Succeeded": 20}
    assert single["patched_nodes"] == 20  # results of the batched phase not counted again
    assert single["patches"] >= 20  # one taskset per task: a patch each, at least
    assert single["tasks_per_s"] > 0 and single["agent_cpu_us_per_task"] >= 0
    assert set(single["rig_cpu_us_per_task"]) == {"simulator", "target", "bench"}
    assert single["ratio"] > 0
    # How much of a core each agent process used while the agent ran, busiest first.
    for shape in (report, single):
        busy = shape["agent_busy_by_process"]
        assert busy == sorted(busy, reverse=True) and all(share > 0 for share in busy), busy
    assert "one task per taskset:" in done.stderr

    light = report["light"]
    assert light["iterations"] == 5
    _ordered(light["latency_ms"])
    assert report["repetitions"] == 1
    # Both shapes on the report's page.
    page = Path(report["report"]["markdown"]).read_text()
    assert "**batched shape**" in page and "**one task per taskset** (20 tasksets)" in page


def test_repetitions_interleave_and_report_the_median_with_spread_and_plots(
    tmp_path: Path,
) -> None:
    done = _bench(
        *NO_LEASES,
        "--tasks",
        "300",
        "--tasksets",
        "3",
        "--concurrency",
        "20",
        "--light-iterations",
        "0",
        "--repetitions",
        "3",
        "--single-tasks",
        "0",
        "--report-dir",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.strip().splitlines()
    report: dict[str, Any] = json.loads(line)
    reps = report["per_repetition"]
    assert report["repetitions"] == 3 and [r["repetition"] for r in reps] == [1, 2, 3]
    # Interleaved: a baseline before each agent run, in that order.
    order = [m for m in done.stderr.splitlines() if "raw aiohttp loop:" in m or "] agent:" in m]
    assert [("raw" in m) for m in order] == [True, False] * 3, order
    # Every repetition ran every task once more (the tasksets are deleted in between).
    assert report["fulfilled"] == 900 and report["results"] == {"Succeeded": 900}
    assert report["patched_nodes"] == 900

    ratios = sorted(r["ratio"] for r in reps)
    assert (report["ratio_min"], report["ratio"], report["ratio_max"]) == tuple(ratios)
    # The headline figures are those of the median repetition (ratios are rounded, so two
    # repetitions may share it: one of them).
    keys = ("tasks_per_s", "raw_aiohttp_rps", "seconds", "latency_ms", "agent_cpu_s")
    assert any(
        all(report[key] == rep[key] for key in keys)
        for rep in reps
        if rep["ratio"] == report["ratio"]
    ), (report, reps)
    for rep in reps:
        assert rep["ratio"] == pytest.approx(rep["tasks_per_s"] / rep["raw_aiohttp_rps"], rel=0.01)
        assert rep["agent_cpu_us_per_task"] == pytest.approx(
            rep["agent_cpu_s"] / 300 * 1e6, rel=0.01, abs=50
        )
        # The agent's CPU is read in /proc's 10 ms ticks: a tiny run may show none.
        assert rep["raw_cpu_us_per_request"] > 0 and rep["agent_cpu_us_per_task"] >= 0
        if rep["agent_cpu_us_per_task"] > 0:
            assert rep["cpu_ratio"] == pytest.approx(
                rep["raw_cpu_us_per_request"] / rep["agent_cpu_us_per_task"], rel=0.05
            )
        _ordered(rep["latency_ms"])
    assert report["cpu_ratio_min"] <= report["cpu_ratio"] <= report["cpu_ratio_max"]
    assert report["raw_cpu_us_per_request"] > 0
    summary = f"ratio {report['ratio']} (median of 3; min {report['ratio_min']}, max"
    assert summary in done.stderr and "cpu ratio" in done.stderr

    # The report next to the JSON: the same JSON, a PNG, a page that shows it.
    paths = report["report"]
    assert {Path(p).parent for p in paths.values()} == {tmp_path}
    written = json.loads(Path(paths["json"]).read_text())
    assert written["ratio"] == report["ratio"] and written["per_repetition"] == reps
    assert Path(paths["png"]).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = Path(paths["markdown"]).read_text()
    assert f"**ratio {report['ratio']}**" in page and Path(paths["png"]).name in page
    assert "**batched shape**" in page and "one task per taskset" not in page
    assert "one_task_per_taskset" not in report  # --single-tasks 0


def test_replicas_share_the_work_and_report_each_members_api_cost() -> None:
    """``--replicas 2``: two members of a Lease group, each a process and API user of its
    own; the counters are summed over them, the simulator's per-user usage gives each
    member's requests and watch bytes."""
    done = _bench(
        "--replicas",
        "2",
        "--tasks",
        "200",
        # the taskset is the unit of ownership: with 20 of them, the chance that one member
        # owns none (and so sends no request in the phase) is 2 in a million, not 1 in 8
        "--tasksets",
        "20",
        "--concurrency",
        "20",
        "--light-iterations",
        "0",
        "--repetitions",
        "1",
        "--no-raw",
        "--no-report",
        "--single-tasks",
        "0",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["agent_replicas"] == 2 and report["agent_processes"] == 1
    assert report["fulfilled"] == 200 and report["results"] == {"Succeeded": 200}
    assert report["patched_nodes"] == 200  # both members' counters: every node once
    replicas = report["replicas"]
    assert replicas["members"] == 2 and set(replicas["per_member"]) == {"member-0", "member-1"}
    for cost in replicas["per_member"].values():
        assert cost["requests"] > 0 and cost["watch_bytes"] > 0
    assert replicas["patches_per_task"] == round(report["patches"] / 200, 3)


def test_light_only_run_skips_the_throughput_phase() -> None:
    done = _bench("--light", "--light-iterations", "3", *NO_LEASES)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["tasks"] == 0
    assert "raw_aiohttp_rps" not in report and "tasks_per_s" not in report
    assert report["light"]["iterations"] == 3
    _ordered(report["light"]["latency_ms"])


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--tasks", "2", "--tasksets", "5"), "--tasksets"),
        (("--tasks", "0"), "--tasks"),
        (("--delay", "-1"), "--delay"),
        (("--light", "--light-iterations", "0"), "--light"),
        (("--repetitions", "0"), "--repetitions"),
        (("--replicas", "0"), "--replicas"),
        (("--single-tasks", "-1"), "--single-tasks"),
        (("--serve",), "--serve"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(args: tuple[str, ...], flag: str) -> None:
    done = _bench(*args, timeout=30)
    assert done.returncode == 2
    assert flag in done.stderr


def test_serve_runs_a_command_stops_the_stack_and_exits_with_its_code(tmp_path: Path) -> None:
    # The command plays the locust user: create a taskset through the API found in
    # LOADTEST_KUBECONFIG, poll until the agent fulfils it, print what it saw.
    probe = tmp_path / "probe.py"
    probe.write_text(
        textwrap.dedent(
            """
            import json, os, time, urllib.request, yaml
            config = yaml.safe_load(open(os.environ["LOADTEST_KUBECONFIG"]))
            server = config["clusters"][0]["cluster"]["server"]
            token = config["users"][0]["user"]["token"]
            base = (f"{server}/apis/argoproj.io/v1alpha1/namespaces/"
                    f"{os.environ['LOADTEST_NAMESPACE']}/workflowtasksets")
            body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTaskSet",
                    "metadata": {"name": "probe"},
                    "spec": {"tasks": {"n1": {"name": "http",
                             "http": {"url": os.environ["LOADTEST_TARGET_URL"]}}}}}
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            urllib.request.urlopen(urllib.request.Request(
                base, data=json.dumps(body).encode(), headers=headers, method="POST"))
            for _ in range(300):
                obj = json.load(urllib.request.urlopen(
                    urllib.request.Request(f"{base}/probe", headers=headers)))
                node = (obj.get("status") or {}).get("nodes", {}).get("n1")
                if node and node.get("phase") == "Succeeded":
                    break
                time.sleep(0.05)
            print(json.dumps({"server": server, "node": node}))
            raise SystemExit(3)  # the command's exit code is the bench's
            """
        )
    )
    done = _bench("--serve", *NO_LEASES, "--timeout", "60", "--", sys.executable, str(probe))
    assert done.returncode == 3, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["node"]["phase"] == "Succeeded"
    assert seen["node"]["outputs"]["result"].startswith('{"pad":"')
    # Everything was stopped: the simulator's port no longer answers.
    host, port = seen["server"].removeprefix("http://").split(":")
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=2):
        pass
