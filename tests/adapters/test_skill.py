"""The skill adapter: catalogue, detail, contents, download, traversal, auth (§8.1)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from naftiko.adapters.skill.app import build_skill_app
from naftiko.adapters.skill.plan import SkillAdapterPlan
from naftiko.engine.types import AdapterPlan
from naftiko.spec.binds import Bindings
from naftiko.spec.models import Authentication, ExposedSkill

ORDER_SKILL = {
    "name": "order-management",
    "description": "Manage orders",
    "license": "Apache-2.0",
    "allowed-tools": "list-orders",
    "argument-hint": "an order id",
    "user-invocable": True,
    "metadata": {"owner": "sales"},
    "location": "file:///./skills/orders",
    "tools": [
        {
            "name": "list-orders",
            "description": "List orders",
            "from": {"sourceNamespace": "orders-rest", "action": "list-orders"},
        },
        {
            "name": "ask-tool",
            "description": "Ask",
            "from": {"sourceNamespace": "orders-mcp", "action": "ask"},
        },
        {
            "name": "elsewhere",
            "description": "?",
            "from": {"sourceNamespace": "gone", "action": "x"},
        },
        {"name": "guide", "description": "How to", "instruction": "guide.md"},
    ],
}
BARE_SKILL = {"name": "bare", "description": "No files", "tools": []}


def sibling(kind: str, namespace: str) -> AdapterPlan:
    return AdapterPlan(kind, namespace, None, None, None, None)  # type: ignore[arg-type]


SIBLINGS = (sibling("rest", "orders-rest"), sibling("mcp", "orders-mcp"))


@pytest.fixture
def capability_dir(tmp_path: Path) -> Path:
    skills = tmp_path / "skills" / "orders"
    (skills / "refs").mkdir(parents=True)
    (skills / "guide.md").write_text("# Orders\n")
    (skills / "refs" / "schema.json").write_text('{"a": 1}')
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (skills / "leak.txt").symlink_to(tmp_path / "secret.txt")
    return tmp_path


def plan(base_dir: Path, auth: Authentication | None = None) -> SkillAdapterPlan:
    skills = tuple(ExposedSkill.model_validate(s) for s in (ORDER_SKILL, BARE_SKILL))
    return SkillAdapterPlan(
        type="skill",
        namespace="skills",
        address=None,
        port=None,
        description=None,
        authentication=auth,
        skills=skills,
        base_dir=str(base_dir),
    )


@pytest.fixture
async def http(capability_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_skill_app(object(), plan(capability_dir), siblings=SIBLINGS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://skills") as client:
        yield client


async def test_catalogue_lists_skills_and_tool_names(http: httpx.AsyncClient) -> None:
    response = await http.get("/skills")
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "skills": [
            {
                "name": "order-management",
                "description": "Manage orders",
                "license": "Apache-2.0",
                "tools": ["list-orders", "ask-tool", "elsewhere", "guide"],
            },
            {"name": "bare", "description": "No files", "tools": []},
        ],
    }


async def test_detail_has_metadata_invocation_refs_and_instructions(
    http: httpx.AsyncClient,
) -> None:
    detail = (await http.get("/skills/order-management")).json()
    assert {k: detail[k] for k in ("allowed-tools", "argument-hint", "user-invocable")} == {
        "allowed-tools": "list-orders",
        "argument-hint": "an order id",
        "user-invocable": True,
    }
    assert detail["metadata"] == {"owner": "sales"}
    refs = [t.get("invocationRef") for t in detail["tools"]]
    assert refs[:3] == [
        {"targetNamespace": "orders-rest", "action": "list-orders", "mode": "rest"},
        {"targetNamespace": "orders-mcp", "action": "ask", "mode": "mcp"},
        {"targetNamespace": "gone", "action": "x", "mode": "unknown"},
    ]
    assert detail["tools"][3] == {
        "name": "guide",
        "description": "How to",
        "type": "instruction",
        "instruction": "guide.md",
    }
    assert "compatibility" not in detail


async def test_unknown_skill_is_a_404_problem(http: httpx.AsyncClient) -> None:
    for path in ("/skills/nope", "/skills/nope/contents", "/skills/nope/download", "/other"):
        response = await http.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404


async def test_contents_lists_readable_files_sorted(http: httpx.AsyncClient) -> None:
    body = (await http.get("/skills/order-management/contents")).json()
    assert body == {
        "name": "order-management",
        "files": [
            {"path": "guide.md", "size": 9, "type": "text/markdown"},
            {"path": "refs/schema.json", "size": 8, "type": "application/json"},
        ],
    }


async def test_files_are_served_with_their_media_type(http: httpx.AsyncClient) -> None:
    response = await http.get("/skills/order-management/contents/refs/schema.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"a": 1}
    missing = await http.get("/skills/order-management/contents/nope.md")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "path",
    ["..%2F..%2Fsecret.txt", "%2e%2e/secret.txt", "refs/..%2F..%2F..%2Fsecret.txt", "leak.txt"],
)
async def test_traversal_is_a_400_and_never_leaks(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(f"/skills/order-management/contents/{path}")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "TOP SECRET" not in response.text


async def test_download_is_a_zip_of_the_location(http: httpx.AsyncClient) -> None:
    response = await http.get("/skills/order-management/download")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.content[:2] == b"PK"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["guide.md", "refs/schema.json"]
    assert archive.read("guide.md") == b"# Orders\n"
    no_location = await http.get("/skills/bare/download")
    assert no_location.status_code == 404


async def test_modes_default_to_the_engines_compiled_adapters(capability_dir: Path) -> None:
    class Compiled:
        adapters = SIBLINGS

    class Engine:
        compiled = Compiled()

    app = build_skill_app(Engine(), plan(capability_dir))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        detail = (await c.get("/skills/order-management")).json()
    assert detail["tools"][0]["invocationRef"]["mode"] == "rest"


async def test_inbound_auth_protects_every_route(capability_dir: Path) -> None:
    auth = Authentication(type="bearer", token="{{SKILL_TOKEN}}")
    app = build_skill_app(
        object(),
        plan(capability_dir, auth),
        siblings=SIBLINGS,
        bindings=Bindings([(None, "SKILL_TOKEN", "s3cret")]),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        refused = await c.get("/skills")
        wrong = await c.get("/skills", headers={"Authorization": "Bearer nope"})
        allowed = await c.get("/skills", headers={"Authorization": "Bearer s3cret"})
    assert (refused.status_code, wrong.status_code, allowed.status_code) == (401, 401, 200)
    assert "s3cret" not in refused.text + wrong.text
