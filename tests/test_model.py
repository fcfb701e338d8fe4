"""``dump`` of node results: the hot-path writer equals pydantic's general serialiser."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.model import NodePhase, NodeResult, Outputs, Parameter, _dump_model, dump

_text = st.text(max_size=20)
_outputs = st.one_of(
    st.none(),
    st.builds(Outputs, result=st.one_of(st.none(), _text)),
    st.builds(
        Outputs,
        result=st.one_of(st.none(), _text),
        parameters=st.one_of(st.none(), st.lists(st.builds(Parameter, name=_text), max_size=2)),
        exit_code=st.one_of(st.none(), _text),
    ),
)
_results = st.builds(
    NodeResult,
    phase=st.one_of(st.sampled_from(list(NodePhase)), _text),
    message=_text,
    outputs=_outputs,
    progress=_text,
)


@settings(max_examples=400, deadline=None)
@given(_results)
def test_dump_of_a_result_equals_the_general_path(result: NodeResult) -> None:
    assert dump(result) == _dump_model(result)
    assert list(dump(result)) == list(_dump_model(result))  # Go's field order too


def test_dump_of_a_result_with_extras_keeps_them() -> None:
    result = NodeResult.model_validate(
        {"phase": "Succeeded", "outputs": {"result": "", "x": 1}, "y": [1]}
    )
    assert dump(result) == {"phase": "Succeeded", "outputs": {"result": "", "x": 1}, "y": [1]}


def test_dump_writes_an_empty_result_and_omits_empty_fields() -> None:
    assert dump(NodeResult(phase=NodePhase.FAILED, outputs=Outputs(result=""))) == {
        "phase": "Failed",
        "outputs": {"result": ""},
    }
    assert dump(NodeResult(phase=NodePhase.SUCCEEDED, outputs=Outputs())) == {
        "phase": "Succeeded",
        "outputs": {},
    }
    assert dump(NodeResult(phase="Running", message="m")) == {"phase": "Running", "message": "m"}
