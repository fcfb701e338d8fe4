"""``loadtest/artifacts_bench.py`` runs end to end on a small body and checks what it stored.

The benchmark's figures (peak RSS over idle, MiB/s) are measurements, not asserted here;
this checks that the script works: moto started, the body streamed by the agent's store in
a child process, read back exact, no multipart upload left pending.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_artifacts_bench_stores_the_body_exactly() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "loadtest" / "artifacts_bench.py"), "--size-mib", "12"],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["client"] == "store" and report["size_mib"] == 12
    assert report["read_back_exact"] is True
    assert report["pending_uploads"] == 0
    assert report["uploader_exit_code"] == 0
    assert report["peak_rss_mib"] >= report["idle_rss_mib"] > 0
