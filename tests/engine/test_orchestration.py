"""Orchestration: call and lookup steps, step ``with``, mappings, failures, load checks.

The chain runs against a scripted :data:`StepCaller` (no network): each test states what
the upstream answers per operation and checks what the chain did with it. The end-to-end
path through ``Engine`` and real upstreams is covered by the tutorial tests (steps 7-11).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from naftiko.engine.orchestration import (
    SCRIPT_REFUSAL,
    StepResponse,
    StepsError,
    check_steps,
    compile_steps,
    execute_steps,
)
from naftiko.engine.types import ErrorKind, Problem
from naftiko.spec.models import OutputParameter, Step, StepMapping
from naftiko.templating import MISSING, Scope

SHIP = {
    "imo_number": "IMO-1",
    "vessel_name": "Northern Star",
    "dimensions": {"length_overall": 229},
    "assignedCrew": ["C1", "C3"],
    "captain": "C1",
}
CREW = [
    {"crewId": "C1", "fullName": "Erik", "role": "captain"},
    {"crewId": "C2", "fullName": "Mateo", "role": "engineer"},
    {"crewId": "C3", "fullName": "Aiko", "role": "cook"},
]

Answer = StepResponse | Problem | Callable[[Scope], StepResponse | Problem]


class Upstream:
    """A scripted caller: answers per operation, and records each call's scope."""

    def __init__(self, answers: Mapping[str, Answer]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Scope]] = []

    async def __call__(self, operation: str, scope: Scope) -> StepResponse | Problem:
        self.calls.append((operation, scope))
        answer = self.answers[operation]
        return answer(scope) if callable(answer) else answer

    def seen(self, index: int, name: str) -> Any:
        return self.calls[index][1].lookup(name)


def ok(document: Any) -> StepResponse:
    return StepResponse(200, document)


def steps(*raw: dict[str, Any]) -> list[Step]:
    return [Step.model_validate(item) for item in raw]


def mappings(**pairs: str) -> list[StepMapping]:
    return [StepMapping(target_name=k.replace("__", "."), value=v) for k, v in pairs.items()]


def scope(**inputs: Any) -> Scope:
    return Scope(binds={"TOKEN": "secret"}, inputs=inputs, input_namespaces=("tools",))


SHIP_AND_CREW = steps(
    {"name": "get-ship", "call": "reg.get-ship", "with": {"imo_number": "{{imo}}"}},
    {"name": "list-crew", "call": "reg.list-crew"},
    {
        "name": "resolve-crew",
        "type": "lookup",
        "index": "list-crew",
        "match": "crewId",
        "lookupValue": "$.get-ship.assignedCrew",
        "outputParameters": ["fullName", "role"],
    },
)


# --------------------------------------------------------------------------- call steps


async def test_tutorial_chain_resolves_crew_and_maps_nested_targets() -> None:
    plan = compile_steps(
        SHIP_AND_CREW,
        mappings(
            imo="$.get-ship.imo_number",
            specs__length="$.get-ship.dimensions.length_overall",
            crew="$.resolve-crew",
            missing="$.get-ship.nope",
        ),
    )
    upstream = Upstream({"reg.get-ship": ok(SHIP), "reg.list-crew": ok(CREW)})
    result = await execute_steps(plan, scope(imo="IMO-1"), upstream)
    assert not result.is_error
    assert result.status == 200
    assert result.body == {
        "imo": "IMO-1",
        "specs": {"length": 229},
        "crew": [{"fullName": "Erik", "role": "captain"}, {"fullName": "Aiko", "role": "cook"}],
    }
    assert upstream.seen(0, "imo_number") == "IMO-1"


async def test_step_with_is_per_step_and_does_not_leak() -> None:
    plan = compile_steps(
        steps(
            {"name": "a", "call": "x.a", "with": {"only_a": "A", "shared": "from-a"}},
            {"name": "b", "call": {"operation": "x.b", "with": {"shared": "from-call"}}},
        )
    )
    upstream = Upstream({"x.a": ok({}), "x.b": ok({})})
    await execute_steps(plan, scope(shared="input"), upstream)
    assert (upstream.seen(0, "only_a"), upstream.seen(0, "shared")) == ("A", "from-a")
    assert upstream.seen(1, "only_a") is MISSING
    assert upstream.seen(1, "shared") == "from-call"
    assert upstream.seen(1, "TOKEN") == "secret"  # binds stay visible in every step


async def test_outputs_and_lookups_are_visible_to_later_templates_and_with() -> None:
    """A step's output and a lookup's result feed later templates and ``with`` values
    (the reference engine hides them; we chose to show them)."""
    plan = compile_steps(
        steps(
            {"name": "get-ship", "call": "reg.get-ship"},
            {"name": "list-crew", "call": "reg.list-crew"},
            {
                "name": "captain",
                "type": "lookup",
                "index": "list-crew",
                "match": "crewId",
                "lookupValue": "{{get-ship.captain}}",
                "outputParameters": ["fullName"],
            },
            {
                "name": "notify",
                "call": "mail.send",
                "with": {"to": "{{captain.fullName}}", "ship": "get-ship.vessel_name"},
            },
        ),
        mappings(sent="$.notify.ok"),
    )
    upstream = Upstream(
        {"reg.get-ship": ok(SHIP), "reg.list-crew": ok(CREW), "mail.send": ok({"ok": True})}
    )
    result = await execute_steps(plan, scope(), upstream)
    assert upstream.seen(2, "to") == "Erik"
    assert upstream.seen(2, "captain") == {"fullName": "Erik"}
    assert upstream.seen(2, "get-ship.dimensions.length_overall") == 229
    assert result.body == {"sent": True}


async def test_input_namespace_references_in_step_with() -> None:
    plan = compile_steps(
        steps({"name": "v", "call": "reg.get-voyage", "with": {"voyageId": "shipyard.voyage-id"}}),
        input_namespaces=("shipyard",),
    )
    upstream = Upstream({"reg.get-voyage": ok({})})
    await execute_steps(plan, scope(**{"voyage-id": "VOY-42"}), upstream)
    assert upstream.seen(0, "voyageId") == "VOY-42"


async def test_consumed_output_parameters_project_objects_and_augment_arrays() -> None:
    region = OutputParameter(name="region", type="string", value="$.profile.region")
    imo = OutputParameter(name="imo-number", type="string", value="$.imo_number")
    plan = compile_steps(
        steps(
            {"name": "profile", "call": "u.profile"},
            {"name": "ships", "call": "reg.list-ships"},
            {
                "name": "ship",
                "type": "lookup",
                "index": "ships",
                "match": "imo-number",
                "lookupValue": "IMO-1",
            },
        ),
        mappings(region="$.profile", ship="$.ship"),
        consumed_outputs={"u.profile": [region], "reg.list-ships": [imo]},
    )
    upstream = Upstream(
        {
            "u.profile": ok({"profile": {"region": "eu", "secret": "x"}}),
            "reg.list-ships": ok([{"imo_number": "IMO-1", "vessel_name": "Northern Star"}]),
        }
    )
    result = await execute_steps(plan, scope(), upstream)
    assert result.body == {
        "region": {"region": "eu"},  # only the named projections
        "ship": {"imo_number": "IMO-1", "vessel_name": "Northern Star", "imo-number": "IMO-1"},
    }


# --------------------------------------------------------------------------- lookups


async def test_lookup_over_an_array_returns_every_match_in_order() -> None:
    plan = compile_steps(SHIP_AND_CREW, mappings(crew="$.resolve-crew"))
    ship = {**SHIP, "assignedCrew": ["C3", "C9", "C1"]}
    upstream = Upstream({"reg.get-ship": ok(ship), "reg.list-crew": ok(CREW)})
    result = await execute_steps(plan, scope(), upstream)
    assert [c["fullName"] for c in result.body["crew"]] == ["Aiko", "Erik"]


async def test_lookup_with_no_match_gives_empty_list_or_nothing() -> None:
    plan = compile_steps(
        [
            *SHIP_AND_CREW,
            *steps(
                {
                    "name": "one",
                    "type": "lookup",
                    "index": "list-crew",
                    "match": "crewId",
                    "lookupValue": "{{who}}",
                }
            ),
        ],
        mappings(crew="$.resolve-crew", one="$.one", imo="$.get-ship.imo_number"),
    )
    ship = {**SHIP, "assignedCrew": []}
    upstream = Upstream({"reg.get-ship": ok(ship), "reg.list-crew": ok(CREW)})
    result = await execute_steps(plan, scope(who="nobody"), upstream)
    assert result.body == {"crew": [], "imo": "IMO-1"}


async def test_lookup_matches_as_text_and_returns_whole_element_without_fields() -> None:
    plan = compile_steps(
        steps(
            {"name": "list", "call": "x.list"},
            {
                "name": "hit",
                "type": "lookup",
                "index": "list",
                "match": "id",
                "lookupValue": "{{id}}",
            },
        ),
        mappings(hit="$.hit"),
    )
    upstream = Upstream({"x.list": ok([{"id": 7, "n": "seven"}, {"id": 8, "n": "eight"}])})
    result = await execute_steps(plan, scope(id="8"), upstream)
    assert result.body == {"hit": {"id": 8, "n": "eight"}}


# --------------------------------------------------------------------------- results


async def test_without_mappings_the_last_call_is_shaped_by_the_unit_outputs() -> None:
    outputs = [
        OutputParameter(
            type="object", properties={"name": OutputParameter(mapping="$.vessel_name")}
        )
    ]
    plan = compile_steps(steps({"name": "s", "call": "reg.get-ship"}), outputs=outputs)
    result = await execute_steps(plan, scope(), Upstream({"reg.get-ship": ok(SHIP)}))
    assert result.body == {"name": "Northern Star"}
    raw = compile_steps(steps({"name": "s", "call": "reg.get-ship"}))
    result = await execute_steps(raw, scope(), Upstream({"reg.get-ship": ok(SHIP)}))
    assert result.body == SHIP


async def test_mapped_scalars_take_the_declared_type() -> None:
    plan = compile_steps(
        steps({"name": "s", "call": "x.get"}),
        mappings(weight="$.s.weight", code="$.s.code"),
        outputs=[
            OutputParameter(name="weight", type="number"),
            OutputParameter(name="code", type="string"),
        ],
    )
    result = await execute_steps(
        plan, scope(), Upstream({"x.get": ok({"weight": "12.5", "code": 7})})
    )
    assert result.body == {"weight": 12.5, "code": "7"}


async def test_upstream_error_stops_the_chain_and_names_the_step() -> None:
    plan = compile_steps(SHIP_AND_CREW, mappings(crew="$.resolve-crew"))
    error = StepResponse(404, MISSING, {"error": "not_found"}, "application/json")
    upstream = Upstream({"reg.get-ship": error, "reg.list-crew": ok(CREW)})
    result = await execute_steps(plan, scope(), upstream)
    assert [op for op, _ in upstream.calls] == ["reg.get-ship"]
    assert result.is_error
    assert (result.status, result.body, result.upstream_status) == (
        404,
        {"error": "not_found"},
        404,
    )
    assert result.problem is not None
    assert (result.problem.kind, result.problem.step) == (ErrorKind.UPSTREAM, "get-ship")


@pytest.mark.parametrize(
    ("kind", "status"), [(ErrorKind.UNREACHABLE, 502), (ErrorKind.TIMEOUT, 504)]
)
async def test_transport_failure_stops_the_chain_with_a_problem_naming_the_step(
    kind: ErrorKind, status: int
) -> None:
    plan = compile_steps(SHIP_AND_CREW)
    failure = Problem(kind, "Upstream failure", "no answer", status)
    upstream = Upstream({"reg.get-ship": ok(SHIP), "reg.list-crew": failure})
    result = await execute_steps(plan, scope(), upstream)
    assert result.is_error and result.status == status
    assert result.body["step"] == "list-crew"
    assert result.problem is not None and result.problem.kind is kind


async def test_a_caller_that_raises_becomes_an_internal_problem() -> None:
    def boom(_: Scope) -> StepResponse:
        raise RuntimeError("secret detail")

    plan = compile_steps(steps({"name": "s", "call": "x.y"}))
    result = await execute_steps(plan, scope(), Upstream({"x.y": boom}))
    assert (result.status, result.body["step"]) == (500, "s")
    assert "secret detail" not in str(result.body)


async def test_unreadable_body_stores_nothing_and_mappings_fall_back() -> None:
    plan = compile_steps(steps({"name": "s", "call": "x.y"}), mappings(v="$.s.v"))
    result = await execute_steps(plan, scope(), Upstream({"x.y": StepResponse(200)}))
    assert (result.is_error, result.status, result.body) == (False, 200, None)


# --------------------------------------------------------------------------- load checks


def test_script_steps_are_refused_at_load_with_a_clear_message() -> None:
    script = steps(
        {"name": "list", "call": "gh.list"},
        {"name": "filter-active", "type": "script", "language": "javascript", "file": "f.js"},
    )
    problems = check_steps(script)
    assert problems == [f"step 'filter-active': {SCRIPT_REFUSAL}"]
    assert "sandbox" in SCRIPT_REFUSAL
    with pytest.raises(StepsError) as info:
        compile_steps(script)
    assert info.value.problems == tuple(problems)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"type": "lookup", "name": "l", "index": "later", "match": "id", "lookupValue": "x"},
            "lookup index 'later' is not an earlier step",
        ),
        ({"type": "lookup", "name": "l", "index": "a", "lookupValue": "v"}, "needs 'match'"),
        ({"name": "c"}, "needs 'call: <namespace>.<operation>'"),
        ({"name": "c", "call": "nodot"}, "invalid call 'nodot'"),
        ({"name": "a", "call": "x.y"}, "used by an earlier step"),
        ({"call": "x.y"}, "needs a 'name'"),
        ({"name": "w", "type": "wait"}, "unknown step type 'wait'"),
    ],
)
def test_check_steps_names_each_problem(raw: dict[str, Any], expected: str) -> None:
    problems = check_steps(steps({"name": "a", "call": "x.y"}, raw))
    assert len(problems) == 1 and expected in problems[0], problems


def test_corpus_shapes_pass_the_checks() -> None:
    assert check_steps(SHIP_AND_CREW) == []
    with pytest.raises(StepsError, match="invalid JSONPath"):
        compile_steps(SHIP_AND_CREW, mappings(bad="$.a[?(@.x ==]"))


SCRIPT_CAPABILITY = """\
naftiko: "1.0.0-alpha2"
capability:
  consumes:
    - namespace: gh
      type: http
      baseUri: "http://127.0.0.1:9"
      resources:
        - name: members
          path: /members
          operations:
            - name: list-members
              method: GET
  exposes:
    - type: mcp
      namespace: reporting
      tools:
        - name: active-members
          steps:
            - {type: call, name: list-members, call: gh.list-members}
            - {type: script, name: filter-active, language: javascript, file: f.js}
"""


def test_the_compiler_refuses_a_script_step_with_its_position(tmp_path: Any) -> None:
    """A script step fails the load, so no plan that could answer 501 is ever built."""
    from naftiko.adapters.exposes import compile_capability
    from naftiko.spec.diagnostics import LoadError
    from naftiko.spec.loader import load_capability

    path = tmp_path / "script.yml"
    path.write_text(SCRIPT_CAPABILITY)
    with pytest.raises(LoadError) as info:
        compile_capability(load_capability(path))
    (error,) = [d for d in info.value.diagnostics if d.severity == "error"]
    assert error.message == f"step 'filter-active': {SCRIPT_REFUSAL}"
    assert (error.file, error.line) == (str(path), 20)
    assert error.path == "capability.exposes[0].tools[0].steps[1]"


def test_a_function_with_a_script_step_is_refused_too(tmp_path: Any) -> None:
    from naftiko.adapters.exposes import compile_capability
    from naftiko.spec.diagnostics import LoadError
    from naftiko.spec.loader import load_capability

    document = SCRIPT_CAPABILITY.replace(
        "  exposes:\n",
        "  aggregates:\n"
        "    - namespace: fleet\n"
        "      functions:\n"
        "        - name: bad\n"
        "          description: d\n"
        "          steps:\n"
        "            - {type: script, name: s, language: python, file: s.py}\n"
        "  exposes:\n",
    )
    path = tmp_path / "script.yml"
    path.write_text(document)
    with pytest.raises(LoadError) as info:
        compile_capability(load_capability(path))
    paths = [d.path for d in info.value.diagnostics if d.severity == "error"]
    assert "capability.aggregates[0].functions[0].steps[0]" in paths
