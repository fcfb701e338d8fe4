"""`make demo` is a newcomer's first contact: it must run to the end and show real results."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_the_agent_and_prints_every_result() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    rows = {
        line.split()[1]: line for line in lines if line.startswith(("orders-wf ", "checks-wf "))
    }
    assert set(rows) == {
        "get-status", "create-order", "server-error", "condition-true",
        "condition-false", "secret-header", "too-slow", "refused",
    }  # fmt: skip
    assert "Succeeded" in rows["get-status"] and "Succeeded" in rows["secret-header"]
    assert "received non-2xx response code: 503" in rows["server-error"]
    assert "evaluated false" in rows["condition-false"]
    assert "context deadline exceeded" in rows["too-slow"]
    assert "create-order was first claimed" in done.stdout
    assert "agent stopped (exit code 0)" in done.stdout
    # The controller's fixed requeue (controller.go newWorkflowTaskSetInformer,
    # rate_limiters.go DEFAULT_REQUEUE_TIME) comes on top of the agent's time.
    assert "results in the tasksets' status after" in done.stdout
    assert "DEFAULT_REQUEUE_TIME (10s by default)" in done.stdout
    # moto (a test dependency) serves the demo's bucket: the artifact row and its read-back.
    (report,) = [line for line in lines if line.startswith("reports-wf ")]
    assert "Succeeded" in report
    assert "artifact report: s3://demo-artifacts/reports-wf/download-report/report" in report
    assert "read back: 3145728 bytes, identical to what the target sent" in done.stdout
