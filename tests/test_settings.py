"""Settings: Argo's env names keep their meaning, flags win, bad values name their source."""

from __future__ import annotations

import pytest

from agent.core.duration import parse_duration
from agent.executor.settings import ExecutorSettings
from agent.service.agent import scopes
from agent.service.run import build_parser
from agent.service.settings import SettingsError, load_settings


def test_argo_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGO_WORKFLOW_NAME", "wf-1")
    monkeypatch.setenv("ARGO_AGENT_TASK_WORKERS", "16")
    monkeypatch.setenv("ARGO_AGENT_PATCH_RATE", "250ms")
    monkeypatch.setenv("ARGO_PLUGIN_ADDRESSES", '["http://localhost:4355"]')
    monkeypatch.setenv("ARGO_PLUGIN_NAMES", '["hello"]')
    monkeypatch.setenv("ARGO_INSTANCE_ID", "blue")
    settings = load_settings()
    assert settings.per_workflow and settings.workflow == "wf-1"
    assert settings.task_workers == 16
    assert settings.patch_rate == 0.25
    assert settings.plugin_addresses == ["http://localhost:4355"]
    assert settings.plugin_names == ["hello"]
    assert settings.instance_id == "blue"


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGO_AGENT_TASK_WORKERS", "16")
    monkeypatch.setenv("ARGO_AGENT_NAMESPACES", "a, b")
    args = vars(build_parser().parse_args(["--task-workers", "64", "-n", "x", "-n", "y"]))
    settings = load_settings(**args)
    assert settings.task_workers == 64
    assert settings.namespaces == ["x", "y"]
    assert [s.namespace for s in scopes(settings)] == ["x", "y"]
    assert load_settings().namespaces == ["a", "b"]


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("ARGO_AGENT_PATCH_RATE", "soon", "ARGO_AGENT_PATCH_RATE: invalid duration 'soon'"),
        ("ARGO_AGENT_PATCH_RATE", "10", "missing or unknown unit"),
        ("ARGO_AGENT_PATCH_RATE", "-1s", "must be a positive Go duration"),
        ("ARGO_AGENT_TASK_WORKERS", "0", "ARGO_AGENT_TASK_WORKERS: Input should be greater"),
        ("ARGO_AGENT_TASK_WORKERS", "many", "ARGO_AGENT_TASK_WORKERS"),
        (
            "ARGO_AGENT_DENY_NETWORKS",
            "10.0.0.0/33",
            "ARGO_AGENT_DENY_NETWORKS: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
        ),
        ("ARGO_AGENT_HTTP2", "maybe", "ARGO_AGENT_HTTP2: Input should be 'on' or 'off'"),
        ("ARGO_AGENT_PROCESSES", "65", "ARGO_AGENT_PROCESSES: Input should be less than"),
        ("ARGO_AGENT_LOG_FORMAT", "xml", "ARGO_AGENT_LOG_FORMAT"),
        ("ARGO_AGENT_REDELIVERY", "sometimes", "ARGO_AGENT_REDELIVERY"),
        ("ARGO_AGENT_SECRET_AUTHORITY", "nobody", "ARGO_AGENT_SECRET_AUTHORITY"),
        ("ARGO_PLUGIN_NAMES", '["only-a-name"]', "must list as many entries"),
    ],
)
def test_invalid_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert named in str(info.value)
    assert str(info.value).startswith("invalid configuration: ")


@pytest.mark.parametrize("value", ["null", " null ", "", "[]"])
def test_no_plugins_when_the_controller_writes_null(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # With no plugins the controller sets both variables to the JSON value null
    # (workflow/controller/agent.go ``createAgentPod``, ``MustMarshallJSON`` of a nil
    # slice); Argo's agent unmarshals that to no plugins (cmd/argoexec/commands/agent.go
    # ``getPluginAddresses`` / ``getPluginNames``).
    monkeypatch.setenv("ARGO_PLUGIN_ADDRESSES", value)
    monkeypatch.setenv("ARGO_PLUGIN_NAMES", value)
    settings = load_settings()
    assert settings.plugin_addresses == [] and settings.plugin_names == []
    from agent.service.agent import executor_settings

    assert executor_settings(settings).plugins == ()


def test_plugin_list_that_is_not_strings_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARGO_PLUGIN_NAMES", "[1]")
    with pytest.raises(SettingsError, match="ARGO_PLUGIN_NAMES: must be a JSON array of strings"):
        load_settings()
    monkeypatch.setenv("ARGO_PLUGIN_NAMES", '["a"')
    with pytest.raises(SettingsError, match="ARGO_PLUGIN_NAMES: not a JSON array of strings"):
        load_settings()


def test_invalid_flag_names_the_flag() -> None:
    with pytest.raises(SettingsError, match="--patch-rate: invalid duration 'fast'"):
        load_settings(patch_rate="fast")


def test_exclusive_namespace_options() -> None:
    with pytest.raises(SettingsError, match="exclude each other"):
        load_settings(all_namespaces=True, namespaces=["a"])


def test_instance_id_selector_matches_the_controller() -> None:
    [scope] = scopes(load_settings(all_namespaces=True, instance_id="blue"))
    assert scope.namespace is None
    assert scope.label_selector == "workflows.argoproj.io/controller-instanceid=blue"
    [scope] = scopes(load_settings(namespaces=["argo"]))
    assert scope.label_selector == "!workflows.argoproj.io/controller-instanceid"
    [scope] = scopes(load_settings(namespaces=["argo"], workflow="wf"))
    assert scope.field_selector == "metadata.name=wf"


@pytest.mark.parametrize("instance_id", ["", "blue"])
def test_per_workflow_mode_selects_by_name_only(instance_id: str) -> None:
    # workflow/executor/agent.go ``Agent``: ``FieldSelector: "metadata.name=" + name``
    # and no label selector, whatever instance ID labels the taskset.
    [scope] = scopes(load_settings(namespaces=["argo"], workflow="wf", instance_id=instance_id))
    assert scope.label_selector == ""
    assert scope.field_selector == "metadata.name=wf"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("250ms", 0.25),
        ("1h2m3.5s", 3723.5),
        ("1m30s", 90.0),
        ("0", 0.0),
        ("-1.5h", -5400.0),
        (".5s", 0.5),
        ("1us", 1e-6),
        ("1µs", 1e-6),
        ("2ns", 2e-9),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "abc", "1x", "s", "1.s5", "--1s"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_http2_setting_reaches_the_executor() -> None:
    from agent.service.agent import executor_settings

    assert executor_settings(load_settings()).http2 is True
    assert executor_settings(load_settings(http2="off")).http2 is False


def test_the_flags_default_to_the_executors_defaults() -> None:
    from agent.service.agent import executor_settings

    built, default = executor_settings(load_settings()), ExecutorSettings()
    shared = ("default_timeout_seconds", "max_result_bytes", "ca_dir", "deny_networks")
    for name in (*shared, "transport", "http2"):
        assert getattr(built, name) == getattr(default, name), name


async def test_secret_authority_defaults_to_the_workflows(monkeypatch: pytest.MonkeyPatch) -> None:
    """``workflow`` by default (a review before each Secret is used), ``agent`` on request,
    and none in per-workflow mode, where the agent's token is the workflow's own."""
    from kubernetes_asyncio import client

    from agent.kube.authority import WorkflowSecretAuthority
    from agent.service.agent import secret_authority

    api = client.ApiClient()
    try:
        assert load_settings().secret_authority == "workflow"
        assert isinstance(secret_authority(load_settings(), api), WorkflowSecretAuthority)
        args = vars(build_parser().parse_args(["--secret-authority", "agent"]))
        assert secret_authority(load_settings(**args), api) is None
        assert secret_authority(load_settings(workflow="wf-1"), api) is None
        monkeypatch.setenv("ARGO_AGENT_SECRET_AUTHORITY", "agent")
        assert load_settings().secret_authority == "agent"
    finally:
        await api.close()
