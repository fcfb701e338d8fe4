"""Output artifacts of HTTP templates: parsing, repository documents, location completion.

Argo facts pinned here (argo-workflows, pkg/apis/workflow/v1alpha1):

* ``Artifact`` (workflow_types.go): ``name``, the inline ``ArtifactLocation`` (``s3``,
  ``gcs``, ``http``, ...), ``archive`` (``ArchiveStrategy``: ``tar`` / ``none`` / ``zip``),
  ``globalName`` ...; ``S3Artifact`` is ``S3Bucket`` inline plus ``key``, and
  ``S3Artifact.HasLocation`` needs endpoint, bucket and key.
* ``S3ArtifactRepository.IntoArtifactLocation`` (artifact_repository_types.go): the key
  format is ``keyFormat``, else ``path.Join(keyPrefix, DefaultArchivePattern)`` with
  ``DefaultArchivePattern = "{{workflow.name}}/{{pod.name}}"``.
* ``ArtifactLocation.Relocate`` (workflow_types.go): a location that ``HasLocation`` is
  kept as it is.
* workflow/validate/validate.go ``validateOutputs``: an output artifact of a leaf template
  (HTTP included, ``Template.IsLeaf``) must have a ``path`` (``Artifact.CleanPath``), so
  one is accepted here and ignored (an HTTP node has no file).
* The executor joins the archive key and the file name (workflow/executor/executor.go
  ``saveArtifactFromFile``: ``path.Join(key, fileName)``); here the file name is the
  artifact's name.
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.core.artifacts import (
    DEFAULT_KEY_FORMAT,
    ArtifactError,
    KeyVariables,
    complete_location,
    expand_key_format,
    output_record,
    parse_output_artifact,
    parse_repository,
)

VARS = KeyVariables("wf-1", "team-a", "uid-9", "wf-1-123")
REPO_DOC: dict[str, Any] = {
    "s3": {
        "bucket": "repo-bucket",
        "endpoint": "minio.example:9000",
        "insecure": True,
        "region": "eu-west-1",
        "accessKeySecret": {"name": "repo-creds", "key": "access"},
        "secretKeySecret": {"name": "repo-creds", "key": "secret"},
    }
}


def artifact(**fields: Any) -> dict[str, Any]:
    return {"artifacts": [{"name": "body", **fields}]}


def refusal(outputs: Any) -> str:
    with pytest.raises(ArtifactError) as caught:
        parse_output_artifact(outputs)
    assert caught.value.bad_input
    return caught.value.message


def test_no_artifact_declared_is_no_artifact() -> None:
    assert parse_output_artifact(None) is None
    assert parse_output_artifact({}) is None
    assert parse_output_artifact({"artifacts": []}) is None
    assert parse_output_artifact({"parameters": [{"name": "p"}]}) is None


def test_several_artifacts_fail_naming_them() -> None:
    message = refusal({"artifacts": [{"name": "a"}, {"name": "b"}]})
    assert message == (
        "invalid template: outputs.artifacts: an HTTP template stores its response body in "
        "exactly one artifact, 2 are declared ('a', 'b')"
    )


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ("x", "invalid template: outputs: expected an object"),
        ({"artifacts": {"name": "a"}}, "invalid template: outputs.artifacts: expected a list"),
        ({"artifacts": ["a"]}, "invalid template: outputs.artifacts[0]: expected an object"),
        (
            {"artifacts": [{"s3": {}}]},
            "invalid template: outputs.artifacts[0].name: Field required",
        ),
        (artifact(name=""), "invalid template: outputs.artifacts[0].name: String should have"),
        (
            artifact(s3={"insecure": "maybe"}),
            "invalid template: outputs.artifacts[0].s3.insecure: Input should be a valid boolean",
        ),
        (
            artifact(s3={"accessKeySecret": {"name": "x"}}),
            "invalid template: outputs.artifacts[0].s3.accessKeySecret.key: Field required",
        ),
        (
            artifact(gcs={"bucket": "b"}),
            "invalid template: outputs.artifacts[0].gcs: the HTTP agent stores artifacts in S3",
        ),
        (
            artifact(archive={"tar": {}}),
            "invalid template: outputs.artifacts[0].archive.tar: the response body is stored "
            "as sent",
        ),
        (
            artifact(s3={"roleARN": "arn:aws:iam::1:role/x"}),
            "invalid template: outputs.artifacts[0].s3.roleARN: assuming a role is not",
        ),
        (
            artifact(s3={"useSDKCreds": True}),
            "invalid template: outputs.artifacts[0].s3.useSDKCreds:",
        ),
    ],
)
def test_bad_fields_are_named(outputs: Any, expected: str) -> None:
    assert refusal(outputs).startswith(expected)


def test_archive_none_and_other_fields_are_accepted() -> None:
    parsed = parse_output_artifact(
        artifact(archive={"none": {}}, globalName="g", path="/tmp/ignored", optional=False)
    )
    assert parsed is not None
    assert parsed.name == "body"
    assert parsed.location is None
    assert parsed.needs_repository()


def test_repository_document_and_default_key_format() -> None:
    repo = parse_repository(REPO_DOC, source="test")
    assert repo.s3.bucket == "repo-bucket"
    assert repo.s3.key == DEFAULT_KEY_FORMAT == "{{workflow.name}}/{{pod.name}}"
    prefixed = parse_repository({"s3": {"bucket": "b", "keyPrefix": "pre"}}, source="t")
    assert prefixed.s3.key == "pre/{{workflow.name}}/{{pod.name}}"
    formatted = parse_repository(
        {"s3": {"bucket": "b", "keyFormat": "x/{{workflow.uid}}", "keyPrefix": "ignored"}},
        source="t",
    )
    assert formatted.s3.key == "x/{{workflow.uid}}"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"gcs": {"bucket": "b"}}, "artifact repository R is not an s3 repository (it has gcs)"),
        ({"archiveLogs": True}, "artifact repository R is not an s3 repository (it has none)"),
        ({"s3": {"bucket": 3}}, "artifact repository R: s3.bucket: Input should be a valid"),
        ({"s3": {"useSDKCreds": True}}, "artifact repository R: s3.useSDKCreds: the SDK"),
        ("text", "artifact repository R: expected an object"),
    ],
)
def test_bad_repository_documents_are_named(document: Any, expected: str) -> None:
    with pytest.raises(ArtifactError) as caught:
        parse_repository(document, source="R")
    assert caught.value.message.startswith(expected)


def test_the_key_is_the_expanded_key_format_joined_with_the_artifact_name() -> None:
    declared = parse_output_artifact(artifact())
    assert declared is not None
    location = complete_location(declared, parse_repository(REPO_DOC, source="t"), VARS)
    assert location.key == "wf-1/wf-1-123/body"
    assert location.bucket == "repo-bucket"
    assert location.endpoint == "minio.example:9000"
    assert location.insecure is True
    assert location.region == "eu-west-1"
    assert location.access_key_secret is not None
    assert location.access_key_secret.name == "repo-creds"
    custom = parse_repository(
        {"s3": {**REPO_DOC["s3"], "keyFormat": "{{ workflow.namespace }}/{{workflow.uid}}/out"}},
        source="t",
    )
    assert complete_location(declared, custom, VARS).key == "team-a/uid-9/out/body"


def test_own_fields_win_and_missing_ones_come_from_the_repository() -> None:
    declared = parse_output_artifact(artifact(s3={"bucket": "own", "key": "exact/key.json"}))
    assert declared is not None
    location = complete_location(declared, parse_repository(REPO_DOC, source="t"), VARS)
    assert (location.bucket, location.key, location.endpoint) == (
        "own",
        "exact/key.json",
        "minio.example:9000",
    )
    assert location.secret_key_secret is not None  # same store: the repository's keys


def test_another_endpoint_never_receives_the_repositorys_credentials() -> None:
    declared = parse_output_artifact(artifact(s3={"endpoint": "elsewhere:9000", "key": "k"}))
    assert declared is not None
    location = complete_location(declared, parse_repository(REPO_DOC, source="t"), VARS)
    assert location.endpoint == "elsewhere:9000"
    assert location.bucket == "repo-bucket"
    assert location.access_key_secret is None and location.secret_key_secret is None


def test_a_complete_own_location_needs_no_repository() -> None:
    declared = parse_output_artifact(
        artifact(s3={"endpoint": "e:1", "bucket": "b", "key": "k", "insecure": False})
    )
    assert declared is not None and not declared.needs_repository()
    assert complete_location(declared, None, VARS).url == "s3://b/k"


def test_an_incomplete_location_without_repository_names_what_is_missing() -> None:
    declared = parse_output_artifact(artifact(s3={"bucket": "b"}))
    assert declared is not None
    with pytest.raises(ArtifactError) as caught:
        complete_location(declared, None, VARS)
    assert caught.value.message == (
        "no artifact repository is configured and outputs.artifacts[0].s3 lacks endpoint, key"
    )


def test_a_repository_without_a_bucket_is_named() -> None:
    declared = parse_output_artifact(artifact())
    assert declared is not None
    repo = parse_repository({"s3": {"endpoint": "e:1"}}, source="R")
    with pytest.raises(ArtifactError) as caught:
        complete_location(declared, repo, VARS)
    assert caught.value.message == (
        "artifact repository R has no s3.bucket and outputs.artifacts[0].s3.bucket is not set"
    )


def test_key_format_variables_an_http_node_lacks_are_refused() -> None:
    with pytest.raises(ArtifactError) as caught:
        expand_key_format("{{workflow.creationTimestamp.Y}}/x", VARS, source="R")
    assert caught.value.message.startswith(
        "artifact repository R: keyFormat: {{workflow.creationTimestamp.Y}} is not available "
        "to an HTTP node (available: {{workflow.name}}, {{workflow.namespace}}, "
        "{{workflow.uid}}, {{pod.name}})"
    )
    with pytest.raises(ArtifactError) as caught:
        expand_key_format("{{workflow.uid}}", KeyVariables("w", "n", "", "p"), source="R")
    assert "{{workflow.uid}} is unknown for this node" in caught.value.message


def test_the_output_record_is_argos_json_with_references_only() -> None:
    declared = parse_output_artifact(artifact(globalName="g"))
    assert declared is not None
    location = complete_location(declared, parse_repository(REPO_DOC, source="t"), VARS)
    assert output_record(declared, location) == {
        "name": "body",
        "globalName": "g",
        "s3": {
            "endpoint": "minio.example:9000",
            "bucket": "repo-bucket",
            "region": "eu-west-1",
            "insecure": True,
            "accessKeySecret": {"name": "repo-creds", "key": "access"},
            "secretKeySecret": {"name": "repo-creds", "key": "secret"},
            "key": "wf-1/wf-1-123/body",
        },
        "archive": {"none": {}},
    }
    plain = parse_output_artifact(artifact(s3={"endpoint": "e:1", "bucket": "b", "key": "k"}))
    assert plain is not None
    record = output_record(plain, complete_location(plain, None, VARS))
    assert record["s3"] == {"endpoint": "e:1", "bucket": "b", "insecure": False, "key": "k"}
