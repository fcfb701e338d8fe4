"""``argo-http-agent expr``: the debugging command, through ``main`` and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent.expr.cli import main

HTTP_ENV = json.dumps({"response": {"statusCode": 201, "body": "ok", "headers": {}}})


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_the_result_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["[1, 2.5, 'a', nil]"], capsys) == (0, '[1,2.5,"a",null]\n', "")


def test_argo_functions_and_dotted_keys_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    env = json.dumps({"lastRetry.exitCode": "2"})
    assert run(["asInt(lastRetry.exitCode) > 1", "--env", env], capsys) == (0, "true\n", "")


def test_bool_mode_is_successcondition(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["response.statusCode == 201", "--bool", "--env", HTTP_ENV], capsys)
    assert (code, out) == (0, "true\n")
    code, out, err = run(["response.body", "--bool", "--env", HTTP_ENV], capsys)
    assert (code, out) == (1, "")
    assert err == "unable to cast expression result 'ok' to bool\n"


def test_bool_mode_has_no_argo_functions(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["asInt('1') == 1", "--bool"], capsys)
    assert code == 1 and err.startswith("unknown name asInt (1:1)")


def test_template_mode(capsys: pytest.CaptureFixture[str]) -> None:
    env = json.dumps({"inputs.parameters.name": "world"})
    code, out, _ = run(
        ["hello {{=sprig.upper(inputs.parameters.name)}}", "--template", "--env", env], capsys
    )
    assert (code, out) == (0, '"hello WORLD"\n')


def test_plain_mode_has_no_argo_functions(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["toJson(1)", "--plain"], capsys)
    assert code == 1 and "unknown name toJson" in err


def test_errors_go_to_stderr_with_position(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["1 +"], capsys) == (1, "", "unexpected token EOF (1:4)\n | 1 +\n | ...^\n")


def test_bad_env_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["1", "--env", "{nope"], capsys)
    assert code == 1 and err.startswith("--env: invalid JSON")
    code, _, err = run(["1", "--env", "[1]"], capsys)
    assert code == 1 and err == "--env: must be a JSON object\n"


def test_values_without_json_form_are_printed_as_go_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["groupBy([1, 2, 3], # % 2)"], capsys) == (0, '"map[0:[2] 1:[1 3]]"\n', "")


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x", "--bool", "--template"]) == 2
    assert main(["--help"]) == 0
    assert "EXPR" in capsys.readouterr().out


def test_runs_as_a_process() -> None:
    env = json.dumps({"response": {"statusCode": 500, "body": "", "headers": {}}})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.expr.cli",
            "response.statusCode == 201",
            "--bool",
            "--env",
            env,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "false\n", "")


@pytest.mark.parametrize("depth", [200, 20_000])
def test_a_deeply_nested_env_is_refused_without_a_traceback(
    capsys: pytest.CaptureFixture[str], depth: int
) -> None:
    env = '{"a": ' + "[" * depth + "]" * depth + "}"
    assert run(["len(a) >= 0", "--env", env], capsys) == (
        1,
        "",
        "--env: nested more than 200 levels deep\n",
    )


def test_an_env_within_the_depth_limit_is_evaluated(capsys: pytest.CaptureFixture[str]) -> None:
    env = '{"a": ' + "[" * 199 + "]" * 199 + "}"  # 200 levels with the object
    assert run(["len(a)", "--env", env], capsys) == (0, "1\n", "")
