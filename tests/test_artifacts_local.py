"""Output artifacts end to end in ``argo-http-agent local``: a real target, a real S3 server.

The target (``/pattern/N``: reproducible bytes in which no block repeats, so a misplaced or
lost part shows) answers on 127.0.0.1, moto_server stores the objects, and every check of
what was stored reads the object back with a plain boto3 client built from the location
the node recorded, so the record is proven complete for a consumer.

Argo facts pinned here (argo-workflows):

* workflow/controller/taskset.go ``reconcileTaskSet``: the controller copies a task result's
  ``outputs`` onto the node (``node.Outputs = taskResult.Outputs.DeepCopy()``), so the
  artifact recorded here is what ``{{steps.X.outputs.artifacts.Y}}`` resolves to.
* workflow/controller/operator.go ``inferFailedReason``: a failure of the wait container,
  which saves output artifacts, makes the node ``Error`` (a store failure is an Error here),
  but the main container's failure ranks first (a failed response stays ``Failed``).
* workflow/executor/postmain.go ``PostMain``: output artifacts are saved whatever the main
  container's exit (a failed response's body is stored too).
* pkg/apis/workflow/v1alpha1/workflow_types.go ``ArchiveStrategy``: ``none: {}`` means the
  object is the file as it is (here: the body as sent).
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from agent_sim.target import pattern
from botocore.config import Config

from agent.core.artifacts import parse_repository
from agent.executor.settings import ExecutorSettings
from agent.service.local import run_local
from tests.s3server import S3_ACCESS_KEY, S3_SECRET_KEY, MotoServer
from tests.servers import TargetServer

ROOT = Path(__file__).resolve().parents[1]
CREDS = {"s3-creds": {"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}}
SECRET_REFS = {
    "accessKeySecret": {"name": "s3-creds", "key": "accessKey"},
    "secretKeySecret": {"name": "s3-creds", "key": "secretKey"},
}
BIG = 9 * 1024 * 1024 + 4321  # above one 8 MiB part: a multipart upload


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> str:
    return moto_s3.create_bucket("local-artifacts")


def taskset(tasks: dict[str, Any], *, uid: str = "") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "wf", "namespace": "argo"}
    if uid:
        metadata["ownerReferences"] = [{"kind": "Workflow", "name": "wf", "uid": uid}]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskSet",
        "metadata": metadata,
        "spec": {"tasks": tasks},
    }


def http_node(url: str, *artifacts: dict[str, Any], **http: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"name": "fetch", "http": {"url": url, **http}}
    if artifacts:
        node["outputs"] = {"artifacts": list(artifacts)}
    return node


def repository(moto: MotoServer, bucket: str, **s3: Any) -> dict[str, Any]:
    return {
        "s3": {"bucket": bucket, "endpoint": moto.endpoint, "insecure": True, **SECRET_REFS, **s3}
    }


def fetch(record: dict[str, Any], secrets: dict[str, dict[str, str]] = CREDS) -> bytes:
    """The object an artifact record names, read by a plain S3 client from the record alone
    (plus the values of the Secrets it references)."""
    s3 = record["s3"]
    access, secret = s3["accessKeySecret"], s3["secretKeySecret"]
    client = boto3.client(
        "s3",
        endpoint_url=("http://" if s3["insecure"] else "https://") + s3["endpoint"],
        aws_access_key_id=secrets[access["name"]][access["key"]],
        aws_secret_access_key=secrets[secret["name"]][secret["key"]],
        region_name=s3.get("region") or "us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    body: bytes = client.get_object(Bucket=s3["bucket"], Key=s3["key"])["Body"].read()
    return body


async def run(
    tasks: dict[str, Any],
    *,
    repo: dict[str, Any] | None = None,
    max_result_bytes: int = 1024,
    uid: str = "",
) -> dict[str, Any]:
    out = await run_local(
        taskset(tasks, uid=uid),
        secrets=CREDS,
        settings=ExecutorSettings(max_result_bytes=max_result_bytes),
        artifact_repository=None if repo is None else parse_repository(repo, source="test"),
    )
    nodes: dict[str, Any] = out["status"]["nodes"]
    return nodes


async def test_an_explicit_location_receives_the_body_byte_exact(
    moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    """A complete own location needs no repository; above the cap the node succeeds with the
    body only in the artifact; below it ``outputs.result`` keeps Argo's meaning."""
    own = {"endpoint": moto_s3.endpoint, "bucket": bucket, "insecure": True, **SECRET_REFS}
    nodes = await run(
        {
            "big": http_node(
                target.url(f"/pattern/{BIG}?seed=1"),
                {"name": "body", "s3": {**own, "key": "x/big"}},
            ),
            "small": http_node(
                target.url("/respond?body=hello"), {"name": "out", "s3": {**own, "key": "x/small"}}
            ),
        }
    )
    big, small = nodes["big"], nodes["small"]
    assert big["phase"] == "Succeeded", big
    assert "result" not in big["outputs"]  # no silent truncation: the artifact alone
    (record,) = big["outputs"]["artifacts"]
    assert record == {
        "name": "body",
        "s3": {
            "endpoint": moto_s3.endpoint,
            "bucket": bucket,
            "insecure": True,
            **SECRET_REFS,
            "key": "x/big",
        },
        "archive": {"none": {}},
    }
    assert fetch(record) == pattern(BIG, seed=1)
    assert small["phase"] == "Succeeded"
    assert small["outputs"]["result"] == "hello"
    assert fetch(small["outputs"]["artifacts"][0]) == b"hello"


async def test_the_repository_completes_the_location_with_its_key_format(
    moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    key_format = "runs/{{workflow.namespace}}/{{workflow.name}}/{{workflow.uid}}/{{pod.name}}"
    nodes = await run(
        {
            "n-1": http_node(target.url("/pattern/5000?seed=2"), {"name": "page"}),
            "n-2": http_node(
                target.url("/pattern/10?seed=3"), {"name": "own-key", "s3": {"key": "fixed/k"}}
            ),
        },
        repo=repository(moto_s3, bucket, keyFormat=key_format, region="us-east-1"),
        uid="uid-123",
    )
    first = nodes["n-1"]["outputs"]["artifacts"][0]
    assert first["s3"]["key"] == "runs/argo/wf/uid-123/n-1/page"
    assert first["s3"]["region"] == "us-east-1"
    assert fetch(first) == pattern(5000, seed=2)
    second = nodes["n-2"]["outputs"]["artifacts"][0]
    assert second["s3"]["key"] == "fixed/k"  # the artifact's own key is used as given
    assert fetch(second) == pattern(10, seed=3)


async def test_argos_default_key_format_without_one(
    moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    """No ``keyFormat``: ``{{workflow.name}}/{{pod.name}}`` (the node ID for an HTTP node),
    then the artifact's name; a ``keyPrefix`` goes in front."""
    plain = await run(
        {"node-a": http_node(target.url("/respond?body=a"), {"name": "body"})},
        repo=repository(moto_s3, bucket),
    )
    assert plain["node-a"]["outputs"]["artifacts"][0]["s3"]["key"] == "wf/node-a/body"
    prefixed = await run(
        {"node-b": http_node(target.url("/respond?body=b"), {"name": "body"})},
        repo=repository(moto_s3, bucket, keyPrefix="pre"),
    )
    record = prefixed["node-b"]["outputs"]["artifacts"][0]
    assert record["s3"]["key"] == "pre/wf/node-b/body"
    assert fetch(record) == b"b"


async def test_a_gzip_body_is_stored_decoded_as_the_client_reads_it(
    moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    text = "compressed " * 500
    nodes = await run(
        {"z": http_node(target.url(f"/gzip?body={text}"), {"name": "body"})},
        repo=repository(moto_s3, bucket),
        max_result_bytes=0,
    )
    assert nodes["z"]["outputs"]["result"] == text
    stored = fetch(nodes["z"]["outputs"]["artifacts"][0])
    assert stored == text.encode() and stored != gzip.compress(text.encode())


async def test_a_failed_response_still_stores_its_body_and_fails_the_node(
    moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    nodes = await run(
        {"e": http_node(target.url("/respond?status=503&body=busy"), {"name": "body"})},
        repo=repository(moto_s3, bucket),
    )
    node = nodes["e"]
    assert node["phase"] == "Failed"
    assert node["message"] == "received non-2xx response code: 503"
    assert node["outputs"]["result"] == "busy"
    assert fetch(node["outputs"]["artifacts"][0]) == b"busy"


async def test_success_condition_sees_nil_above_the_cap(
    moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    """Above ``--max-result-bytes`` ``response.body`` is nil (never a truncated text): a
    condition on the status passes, one reading the body fails saying why."""
    url = target.url("/pattern/4096?seed=4")
    nodes = await run(
        {
            "status-only": http_node(
                url, {"name": "b"}, successCondition="response.statusCode == 200"
            ),
            "nil-check": http_node(url, {"name": "b"}, successCondition="response.body == nil"),
            "reads-body": http_node(
                url, {"name": "b"}, successCondition='response.body contains "x"'
            ),
            "under-cap": http_node(
                target.url("/respond?body=ok"),
                {"name": "b"},
                successCondition='response.body == "ok"',
            ),
        },
        repo=repository(moto_s3, bucket),
        max_result_bytes=1000,
    )
    assert nodes["status-only"]["phase"] == "Succeeded"
    assert nodes["nil-check"]["phase"] == "Succeeded"
    assert nodes["under-cap"]["phase"] == "Succeeded"
    reads = nodes["reads-body"]
    assert reads["phase"] == "Failed"
    assert reads["message"].endswith(
        "(response.body is nil: the body of 4096 bytes exceeds the agent's limit of 1000 "
        "bytes for outputs.result and is only in the artifact)"
    )
    # The body is stored all the same, and recorded.
    assert fetch(reads["outputs"]["artifacts"][0]) == pattern(4096, seed=4)


async def test_a_missing_bucket_is_an_error_naming_artifact_location_and_cause(
    moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    nodes = await run(
        {
            "lost": http_node(
                target.url("/respond?body=x"), {"name": "body", "s3": {"bucket": "no-such"}}
            ),
            "fine": http_node(target.url("/respond?body=y"), {"name": "body"}),
            "lost-and-failed": http_node(
                target.url("/respond?status=500&body=z"),
                {"name": "body", "s3": {"bucket": "no-such"}},
            ),
        },
        repo=repository(moto_s3, bucket),
    )
    both = nodes["lost-and-failed"]
    assert both["phase"] == "Failed"
    assert both["message"].startswith(
        "received non-2xx response code: 500; failed to save artifact 'body': "
    )
    assert both["outputs"] == {"result": "z"}
    lost = nodes["lost"]
    assert lost["phase"] == "Error"
    assert lost["message"].startswith("failed to save artifact 'body': ")
    assert "s3://no-such/wf/lost/body" in lost["message"]
    assert "NoSuchBucket" in lost["message"]
    assert "artifacts" not in lost.get("outputs", {})
    assert S3_SECRET_KEY not in str(nodes) and S3_ACCESS_KEY not in str(nodes)
    assert nodes["fine"]["phase"] == "Succeeded"


async def test_wrong_credentials_are_an_error_and_never_shown(
    moto_s3_auth: MotoServer, target: TargetServer
) -> None:
    bucket = moto_s3_auth.create_bucket("guarded")
    repo = {
        "s3": {
            "bucket": bucket,
            "endpoint": moto_s3_auth.endpoint,
            "insecure": True,
            **SECRET_REFS,
        }
    }
    nodes = await run({"n": http_node(target.url("/respond?body=x"), {"name": "body"})}, repo=repo)
    node = nodes["n"]
    assert node["phase"] == "Error"
    assert node["message"].startswith("failed to save artifact 'body': ")
    assert f"s3://{bucket}/wf/n/body" in node["message"]
    assert S3_SECRET_KEY not in node["message"] and S3_ACCESS_KEY not in node["message"]
    assert moto_s3_auth.pending_uploads(bucket) == []


async def test_bad_declarations_fail_their_own_node_only(
    moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    url = target.url("/respond?body=x")
    nodes = await run(
        {
            "two": http_node(url, {"name": "a"}, {"name": "b"}),
            "tar": http_node(url, {"name": "a", "archive": {"tar": {}}}),
            "gcs": http_node(url, {"name": "a", "gcs": {"bucket": "b", "key": "k"}}),
            "half-keys": http_node(
                url,
                {
                    "name": "a",
                    "s3": {
                        "endpoint": "127.0.0.1:9",
                        "bucket": "b",
                        "key": "k",
                        "accessKeySecret": SECRET_REFS["accessKeySecret"],
                    },
                },
            ),
            "no-secret": http_node(
                url,
                {
                    "name": "a",
                    "s3": {
                        "accessKeySecret": {"name": "absent", "key": "k"},
                        "secretKeySecret": {"name": "absent", "key": "k"},
                    },
                },
            ),
            "fine": http_node(url, {"name": "a"}),
        },
        repo=repository(moto_s3, bucket),
    )
    assert nodes["two"] == {
        "phase": "Failed",
        "message": "invalid template: outputs.artifacts: an HTTP template stores its response "
        "body in exactly one artifact, 2 are declared ('a', 'b')",
    }
    assert nodes["tar"]["phase"] == "Failed"
    assert nodes["tar"]["message"].startswith("invalid template: outputs.artifacts[0].archive.tar:")
    assert nodes["gcs"]["message"].startswith("invalid template: outputs.artifacts[0].gcs:")
    assert nodes["half-keys"] == {
        "phase": "Failed",
        "message": "artifact 'a': s3.accessKeySecret is set but s3.secretKeySecret is not; "
        "give both",
    }
    assert nodes["no-secret"]["phase"] == "Error"
    assert nodes["no-secret"]["message"] == (
        "artifact 'a': s3.accessKeySecret: secrets \"absent\" not found"
    )
    assert nodes["fine"]["phase"] == "Succeeded"
    # A refused node sent no request: only "fine" and nothing else reached the store.
    assert moto_s3.object_exists(bucket, "wf/fine/a")
    assert not moto_s3.object_exists(bucket, "wf/two/a")


async def test_without_a_repository_an_incomplete_location_is_named(target: TargetServer) -> None:
    nodes = await run({"n": http_node(target.url("/respond?body=x"), {"name": "body"})})
    assert nodes["n"] == {
        "phase": "Error",
        "message": "artifact 'body': no artifact repository is configured and "
        "outputs.artifacts[0].s3 lacks endpoint, bucket, key",
    }


def local_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "local", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_local_command_takes_an_artifact_repository_file(
    moto_s3: MotoServer, bucket: str, target: TargetServer, tmp_path: Path
) -> None:
    """``argo-http-agent local FILE --artifact-repository REPO.yaml --secrets FILE``."""
    manifest = tmp_path / "ts.yaml"
    manifest.write_text(
        yaml.safe_dump(
            taskset(
                {
                    "cli-node": http_node(
                        target.url(f"/pattern/{BIG}?seed=5&length=1"), {"name": "data"}
                    )
                }
            )
        )
    )
    repo = tmp_path / "repo.yaml"
    repo.write_text(yaml.safe_dump(repository(moto_s3, bucket, keyFormat="cli/{{pod.name}}")))
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s3-creds"},
                "stringData": CREDS["s3-creds"],
            }
        )
    )
    done = local_cli(
        str(manifest),
        "--artifact-repository",
        str(repo),
        "--secrets",
        str(secrets),
        "--max-result-bytes",
        "1024",
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stderr
    node = yaml.safe_load(done.stdout)["status"]["nodes"]["cli-node"]
    assert node["phase"] == "Succeeded"
    record = node["outputs"]["artifacts"][0]
    assert record["s3"]["key"] == "cli/cli-node/data"
    assert fetch(record) == pattern(BIG, seed=5)
    assert S3_SECRET_KEY not in done.stdout + done.stderr


def test_a_bad_repository_file_is_refused_naming_it(tmp_path: Path) -> None:
    manifest = tmp_path / "ts.yaml"
    manifest.write_text(yaml.safe_dump(taskset({"n": http_node("http://127.0.0.1:9/")})))
    repo = tmp_path / "repo.yaml"
    repo.write_text(yaml.safe_dump({"gcs": {"bucket": "b"}}))
    done = local_cli(str(manifest), "--artifact-repository", str(repo))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"argo-http-agent local: artifact repository --artifact-repository {repo} is not an s3 "
        "repository (it has gcs); the HTTP agent stores artifacts in S3 only"
    )


async def test_an_endpoint_the_template_chose_obeys_the_outbound_policy(
    moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    """A template's own ``s3.endpoint`` is a destination like its URL: a denied one fails the
    node before the request; the repository's endpoint is the operator's and not checked."""
    out = await run_local(
        taskset(
            {
                "denied": http_node(
                    target.url("/respond?body=x"),
                    {"name": "body", "s3": {"endpoint": "127.0.0.2:9", "key": "k"}},
                ),
                "repo": http_node(target.url("/respond?body=y"), {"name": "body"}),
            }
        ),
        secrets=CREDS,
        settings=ExecutorSettings(deny_networks=("127.0.0.2/32",)),
        artifact_repository=parse_repository(repository(moto_s3, bucket), source="test"),
    )
    nodes = out["status"]["nodes"]
    assert nodes["denied"] == {
        "phase": "Error",
        "message": "artifact 'body': s3.endpoint '127.0.0.2:9': outbound policy: destination "
        "127.0.0.2 is denied by rule 127.0.0.2/32 (deny_networks)",
    }
    assert nodes["repo"]["phase"] == "Succeeded"
