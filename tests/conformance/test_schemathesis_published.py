"""schemathesis over the OpenAPI documents that published capabilities are served with.

Each document is served (REST adapters only, real loader/compiler/engine, uvicorn) with
every consumed base URI pointing at a recording echo upstream, and dummy bind values.
schemathesis generates requests from the served document and checks the answers against
it: no server error, statuses, content types and bodies as documented, schema-valid
requests accepted and invalid ones refused. The TikTok capability has its own run in
``tests/adapters/test_rest_e2e.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hardening_kit import RawRecorder
from hypothesis import HealthCheck, given, settings

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.rest.app import OPENAPI_PATH, build_rest_app
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.engine.invoke import Engine
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import BackgroundServer, ServerThread, serve_asgi

# (document under ../shared/corpus, the bind variables it needs: dummy values)
PUBLISHED = [
    ("api-evangelist-notion/capabilities/notion-capability.yaml", {"NOTION_TOKEN": "dummy"}),
    ("api-evangelist-netlify/capabilities/netlify-asset.yaml", {"NETLIFY_API_KEY": "dummy"}),
    ("api-evangelist-ngrok/capabilities/ngrok-ip-policies.yaml", {"NGROK_API_KEY": "dummy"}),
]
EXAMPLES = 25  # per operation: enough to reach every input, cheap on two shared cores


class _Served(BackgroundServer):
    """Every REST adapter of one document, in a thread (schemathesis blocks its caller)."""

    def __init__(self, path: Path, env: dict[str, str], upstream: str) -> None:
        @contextlib.asynccontextmanager
        async def factory() -> AsyncIterator[str]:
            loaded = load_capability(path, env=env)
            consumed = {c.namespace: upstream for c in loaded.document.consumed()}
            settings = UpstreamSettings(base_uri_overrides=consumed)
            compiled = compile_capability(loaded, settings)
            (plan,) = [p for p in compiled.adapters if isinstance(p, RestAdapterPlan)][:1]
            async with Engine(compiled, settings) as engine:
                app = build_rest_app(
                    engine, plan, bindings=loaded.bindings, info=loaded.document.info
                )
                async with serve_asgi(app) as url:
                    yield url

        super().__init__(factory)


@pytest.mark.parametrize(("document", "env"), PUBLISHED, ids=[Path(p[0]).stem for p in PUBLISHED])
def test_published_documents_keep_their_served_contract(
    shared_dir: Path, document: str, env: dict[str, str]
) -> None:
    import schemathesis

    path = shared_dir / "corpus" / document
    if not path.exists():
        pytest.skip(f"{path} is not in this corpus")
    with ServerThread(RawRecorder()) as upstream, _Served(path, env, upstream.url) as served:
        schema = schemathesis.openapi.from_url(served.url + OPENAPI_PATH)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert operations
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,  # the same examples on every run: a failure reproduces
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                case.call_and_validate(base_url=served.url)

            check()
