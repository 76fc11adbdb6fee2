"""Gateway mode end to end: 40 published documents behind one ``--gateway`` port.

One subprocess serves a folder of links to 40 corpus documents (12 with their secrets
unset, so degraded), plus two written here: one whose texts try to inject markup into
the catalogue, one behind bearer authentication. Every REST operation is called on its
prefix against a loopback echo upstream, tools are listed and called with the official
MCP client through each ``/NS/mcp`` and through the aggregate ``/mcp``, and the
catalogue and a docs page are rendered in headless Chromium.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from bs4 import BeautifulSoup
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from naftiko.adapters.mcp.aggregate import NAME_PATTERN, assign_names
from naftiko.spec.loader import load_capability
from runtime.naftiko_process import REPO_ROOT, NaftikoProcess
from support.servers import ServerThread

CORPUS = REPO_ROOT.parent / "shared" / "corpus"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OK = [
    "api-evangelist-amplitude/capabilities/amplitude-analytics-ingestion.yaml",
    "api-evangelist-atlassian/capabilities/bitbucket-addon-addons.yaml",
    "api-evangelist-factset/capabilities/axioma-fixed-income-optimizer-engines.yaml",
    "api-evangelist-google-analytics/capabilities/measurement-protocol-events.yaml",
    "api-evangelist-linkedin/capabilities/marketing-community-use-cases-statistics-apis-"
    "organization-follower-statistics.yaml",
    "api-evangelist-marketo/capabilities/engage-rest-approve.yaml",
    "api-evangelist-mastercard/capabilities/account-to-account-commerce-for-creditor-service-"
    "providers-payment-requests.yaml",
    "api-evangelist-mongodb/capabilities/mongodb-capability.yaml",
    "api-evangelist-nginx/capabilities/monitoring-and-observability.yaml",
    "api-evangelist-opensearch/capabilities/security-account.yaml",
    "api-evangelist-palo-alto-networks/capabilities/shared/security-advisory.yaml",
    "api-evangelist-pluralsight/capabilities/shared/public-course-catalog-rest.yaml",
    "api-evangelist-pulumi/capabilities/pulumi-ai.yaml",
    "api-evangelist-salesforce/integrations/salesforce-docusign.yaml",
    "api-evangelist-sap/capabilities/shared/business-one.yaml",
    "api-evangelist-servicenow/capabilities/trouble-ticket-trouble-ticket.yaml",
    "api-evangelist-sinch/capabilities/verification-verifications.yaml",
    "api-evangelist-slack/capabilities/admin-deletes.yaml",
    "api-evangelist-snowflake/capabilities/compute-pool-compute-pool.yaml",
    "api-evangelist-stripe/capabilities/balance-identifiers.yaml",  # its secret is set
    "api-evangelist-twilio/capabilities/content-content.yaml",
    "api-evangelist-websphere/capabilities/liberty-collective-controller-rest-scaling.yaml",
    "api-evangelist-zoom/capabilities/group--group.yaml",
    "api-evangelist-zoominfo/capabilities/data-enrichment.yaml",
    "api-search-capabilities/2020-police-brutality/2020-police-brutality-incident-research.yaml",
    "naftiko-framework-examples/forecast-aggregate.yml",
    "naftiko-framework-tests/aggregates/aggregate-shared-mock.yaml",
    "naftiko-framework-tutorial/step-10-shipyard-rest-adapter.yml",
]
SECRETS = {"STRIPE_API_KEY": "sk_test_gateway_e2e", "GUARD_TOKEN": "guard-token-e2e"}
DEGRADED = {  # file: the variables left unset (named in every answer)
    "api-evangelist-abstract-api/capabilities/avatars-avatars.yaml": ["ABSTRACT_API_API_KEY"],
    "api-evangelist-adyen/capabilities/accounts-checkaccountholder.yaml": ["ADYEN_API_KEY"],
    "api-evangelist-apigee/capabilities/analytics-traffic-observability.yaml": [
        "GOOGLE_ACCESS_TOKEN"
    ],
    "api-evangelist-apis-io/capabilities/api-discovery-search.yaml": ["APIS_IO_API_KEY"],
    "api-evangelist-axway/capabilities/amplify-platform-aca.yaml": ["AXWAY_API_KEY"],
    "api-evangelist-buildkite-com/capabilities/pipelines.yaml": [
        "BUILDKITE_API_TOKEN",
        "BUILDKITE_ORG_SLUG",
    ],
    "api-evangelist-cloudflare/capabilities/ai-and-ml.yaml": ["CLOUDFLARE_API_TOKEN"],
    "api-evangelist-datadog/capabilities/datadog-cancel.yaml": ["DATADOG_API_KEY"],
    "api-evangelist-dynatrace/capabilities/account-management-environments.yaml": [
        "DYNATRACE_API_KEY"
    ],
    "api-evangelist-facebook/capabilities/advertising-and-marketing.yaml": [
        "FACEBOOK_MARKETING_TOKEN",
        "FACEBOOK_ACCESS_TOKEN",
        "INSTAGRAM_ACCESS_TOKEN",
    ],
    "api-evangelist-github/capabilities/ci-cd.yaml": ["GITHUB_TOKEN"],
    "api-evangelist-hubspot/capabilities/blog-posts-post-cloning.yaml": ["HUBSPOT_API_KEY"],
}
XSS = "<script>document.title='owned'</script><img src=x onerror=alert(1)>"
CRAFTED = {
    "xss.yaml": f"""\
naftiko: 1.0.0-alpha2
info:
  label: "Injected {XSS}"
  description: "Description {XSS} \\" onmouseover=\\"alert(2)"
capability:
  consumes:
    - type: http
      namespace: xss-backend
      baseUri: http://127.0.0.1:9
      resources:
        - name: thing
          path: /thing
          operations:
            - name: get-thing
              method: GET
  exposes:
    - type: rest
      namespace: xss-rest
      port: 8080
      description: "{XSS}"
      resources:
        - path: /things
          name: things
          description: "{XSS}"
          operations:
            - method: GET
              name: getThings
              description: "</td></tr></table>{XSS}"
              call: xss-backend.get-thing
    - type: mcp
      namespace: xss-mcp
      port: 9090
      tools:
        - name: get-thing
          description: "{XSS}"
          call: xss-backend.get-thing
""",
    "guarded.yaml": """\
naftiko: 1.0.0-alpha2
info:
  label: Guarded
  description: REST and MCP behind a bearer token.
binds:
  - namespace: guard
    keys:
      TOKEN: GUARD_TOKEN
capability:
  consumes:
    - type: http
      namespace: guarded-backend
      baseUri: http://127.0.0.1:9
      resources:
        - name: item
          path: /items/{{id}}
          operations:
            - name: get-item
              method: GET
  exposes:
    - type: rest
      namespace: guarded-rest
      port: 8080
      authentication: {type: bearer, token: "{{TOKEN}}"}
      resources:
        - path: /items/{id}
          name: item
          operations:
            - method: GET
              name: getItem
              call: guarded-backend.get-item
              inputParameters:
                - {name: id, in: path, type: string, required: true}
    - type: mcp
      namespace: guarded-mcp
      port: 9090
      authentication: {type: bearer, token: "{{TOKEN}}"}
      tools:
        - name: get-item
          description: One item.
          call: guarded-backend.get-item
          inputParameters:
            - {name: id, type: string, required: true, description: the id}
""",
}

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not here")


class Upstream:
    """A loopback upstream answering every path with JSON that echoes the request."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def echo(self, request: Request) -> JSONResponse:
        self.paths.append(request.url.path)
        return JSONResponse({"ok": True, "method": request.method, "path": request.url.path})

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", self.echo, methods=methods)])


class Gateway:
    def __init__(self, process: NaftikoProcess, url: str, ready_s: float, upstream: Upstream):
        self.process = process
        self.url = url
        self.ready_s = ready_s
        self.upstream = upstream
        self.status: dict[str, Any] = httpx.get(url + "/status").json()

    def adapters(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.status["adapters"] if a["type"] == kind]


def _consumed(path: Path) -> set[str]:
    loaded = load_capability(path, require_binds=False)
    return {c.namespace for c in loaded.document.consumed()}


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    upstream = Upstream()
    with tempfile.TemporaryDirectory(prefix="naftiko-gateway-") as tmp:
        folder = Path(tmp, "capabilities")
        folder.mkdir()
        for index, name in enumerate([*OK, *DEGRADED]):
            target = CORPUS / name
            # Links keep each document's own directory for its relative imports.
            (folder / f"{index:02d}-{target.name}").symlink_to(target.resolve())
        for name, text in CRAFTED.items():
            (folder / name).write_text(text)
        namespaces = sorted({ns for p in folder.iterdir() for ns in _consumed(p)})
        with ServerThread(upstream.app()) as server:
            base_uris = ",".join(f"{ns}={server.url}" for ns in namespaces)
            process = NaftikoProcess(
                [str(folder), "--gateway", "0", "--host", "127.0.0.1", "--log-format", "json"],
                env={**SECRETS, "NAFTIKO_BASE_URIS": base_uris},
            )
            for variables in DEGRADED.values():
                for variable in variables:
                    process.env.pop(variable, None)
            started = time.monotonic()
            with process:
                urls = process.wait_ready()
                ready_s = time.monotonic() - started
                yield Gateway(process, urls["gateway"], ready_s, upstream)


# ------------------------------------------------------------------ REST


def _value(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][0]
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(
        str(kind), "x1"
    )


def _calls(gateway: Gateway, prefix: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    document = httpx.get(f"{gateway.url}/{prefix}/.well-known/openapi.json").json()
    assert document["servers"] == [{"url": f"/{prefix}"}]
    for path, item in document["paths"].items():
        if path == "/.well-known/openapi.json":
            continue
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            url, query = path, {}
            for parameter in operation.get("parameters", []):
                value = _value(parameter.get("schema", {}))
                if parameter["in"] == "path":
                    url = url.replace("{" + parameter["name"] + "}", str(value))
                elif parameter["in"] == "query" and parameter.get("required"):
                    query[parameter["name"]] = value
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            kwargs: dict[str, Any] = {"params": query}
            if body is not None:
                kwargs["json"] = _value(body.get("schema", {"type": "object"}))
            yield method.upper(), f"/{prefix}{url}", kwargs


def test_every_rest_operation_answers_on_its_prefix(gateway: Gateway) -> None:
    degraded = {c["file"]: c for c in gateway.status["capabilities"] if c["state"] == "degraded"}
    assert len(degraded) == len(DEGRADED)
    owners = _owners(gateway)
    statuses: dict[int, int] = {}
    calls = 0
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for adapter in gateway.adapters("rest"):
            prefix = adapter["url"].rsplit("/", 1)[1]
            if prefix == "guarded-rest":
                continue
            is_degraded = owners[prefix] in degraded
            for method, url, kwargs in _calls(gateway, prefix):
                response = client.request(method, url, **kwargs)
                calls += 1
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.status_code not in (404, 405), (method, url, response.text)
                if is_degraded:
                    assert response.status_code == 503, (url, response.text)
                    problem = response.json()
                    assert response.headers["content-type"] == "application/problem+json"
                    assert problem["type"].endswith("/unconfigured")
                    assert "is not set" in problem["detail"]
    assert calls >= 200
    assert statuses.get(503, 0) >= 20
    # Most operations reached the echo upstream (others need inputs a generic caller
    # cannot guess, or map the echo to nothing: a 4xx/5xx of the document's making).
    assert len(gateway.upstream.paths) >= 100, statuses


def _owners(gateway: Gateway) -> dict[str, str]:
    """Prefix -> file, from the catalogue page (``/status`` lists adapters, not files)."""
    soup = BeautifulSoup(httpx.get(gateway.url + "/").text, "html.parser")
    owners = {}
    for section in soup.select("section.capability"):
        file = section.select_one("p.file").get_text()
        for link in section.select("h3.adapter a"):
            owners[link["href"].strip("/").split("/")[0]] = file
    return owners


def test_degraded_answer_names_the_missing_variable(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/avatars-avatars-rest/v1/avatars", params={"name": "a"})
    if response.status_code == 404:  # the path differs: take the first operation instead
        method, url, kwargs = next(_calls(gateway, "avatars-avatars-rest"))
        response = httpx.request(method, gateway.url + url, **kwargs)
    assert response.status_code == 503
    assert "ABSTRACT_API_API_KEY" in response.json()["detail"]


def test_prefixed_paths_keep_inbound_auth_and_exact_routing(gateway: Gateway) -> None:
    token = {"Authorization": f"Bearer {SECRETS['GUARD_TOKEN']}"}
    base = gateway.url
    before = len(gateway.upstream.paths)
    refused = [
        httpx.get(f"{base}/guarded-rest/items/1"),
        httpx.get(f"{base}/guarded-rest/items/1/"),
        httpx.get(f"{base}/guarded-rest/.well-known/openapi.json"),
        httpx.post(f"{base}/guarded-mcp/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "x"}),
    ]
    assert [r.status_code for r in refused] == [401, 401, 401, 401]
    assert len(gateway.upstream.paths) == before
    # Other spellings of the prefix reach no adapter at all: never a way around its auth.
    for path in (
        "/guarded-rest%2Fitems/1",
        "//guarded-rest/items/1",
        "/Guarded-Rest/items/1",
        "/guarded-rest%2fitems%2f1",
        "/%67uarded-rest/items/1",
    ):
        response = httpx.get(base + path, headers=token)
        assert response.status_code == 404, path
    assert httpx.get(f"{base}/guarded-rest/items/1", headers=token).status_code == 200
    assert httpx.get(f"{base}/guarded-rest/items/1/", headers=token).status_code == 200
    assert len(gateway.upstream.paths) == before + 2
    # The Host check applies on the gateway's own pages and the members' alike.
    evil = {"Host": "evil.example"}
    for path in ("/", "/mcp", "/guarded-rest/items/1", "/status", "/xss-rest/docs"):
        assert httpx.get(base + path, headers={**evil, **token}).status_code == 421, path
    # And the Origin check: a page elsewhere cannot drive the gateway from a browser.
    origin = {"Origin": "http://evil.example", **token}
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    assert httpx.post(base + "/mcp", json=rpc, headers=origin).status_code == 403
    assert httpx.get(base + "/guarded-rest/items/1", headers=origin).status_code == 403
    assert httpx.get(base + "/", headers=origin).status_code == 403
    assert len(gateway.upstream.paths) == before + 2


# ------------------------------------------------------------------ MCP


async def _all_tools(client: Client) -> list[Any]:
    tools, cursor, pages = [], None, 0
    while True:
        result = await client.list_tools(cursor=cursor)
        tools += result.tools
        pages += 1
        cursor = result.next_cursor
        if not cursor:
            return tools


def _document_tools(gateway: Gateway) -> dict[str, list[str]]:
    """Prefix -> tool names, as each document declares them, for the MCP adapters that
    declare no authentication (those behind one are tested with their token)."""
    found: dict[str, list[str]] = {}
    for path in Path(gateway.process.args[4]).iterdir():
        loaded = load_capability(path, require_binds=False)
        for adapter in loaded.document.capability.exposes:  # type: ignore[union-attr]
            if adapter.type == "mcp" and adapter.authentication is None:
                found[adapter.namespace] = [t.name for t in adapter.tools]
    return found


async def test_each_namespace_endpoint_lists_exactly_its_tools(gateway: Gateway) -> None:
    declared = _document_tools(gateway)
    served = [a for a in gateway.adapters("mcp") if a["namespace"] in declared]
    assert len(served) == len(declared) >= 40
    for adapter in served:
        async with Client(adapter["url"]) as client:
            names = [t.name for t in await _all_tools(client)]
        assert names == list(dict.fromkeys(declared[adapter["namespace"]])), adapter


async def test_aggregate_lists_every_tool_by_the_naming_rule_and_calls_them(
    gateway: Gateway,
) -> None:
    declared = _document_tools(gateway)  # behind authentication: not aggregated
    expected = assign_names(
        [(ns, name) for ns, names in declared.items() for name in dict.fromkeys(names)]
    )
    async with Client(gateway.url + "/mcp") as client:
        tools = await _all_tools(client)
        names = [t.name for t in tools]
        assert len(names) == len(set(names)) == len(expected) > 100  # more than one page
        assert all(NAME_PATTERN.match(n) for n in names)
        assert set(names) == set(expected.values())
        by_name = {t.name: t for t in tools}
        # The stripe document's secret is set: its tool reaches the upstream.
        name = expected[("balance-identifiers-mcp", "stripe-get-balance-history-id")]
        assert by_name[name].description
        before = len(gateway.upstream.paths)
        result = await client.call_tool(name, {"id": "txn_1"})
        assert not result.is_error, result
        assert gateway.upstream.paths[before:] == ["/v1/balance/history/txn_1"]
        # A degraded document's tool answers isError naming the missing variable.
        name = expected[("avatars-avatars-mcp", next(iter(declared["avatars-avatars-mcp"])))]
        result = await client.call_tool(name, {"name": "a"})
        assert result.is_error and "ABSTRACT_API_API_KEY" in result.content[0].text
    # The same call through the document's own endpoint gives the same answer.
    own = next(a["url"] for a in gateway.adapters("mcp") if a["namespace"] == "avatars-avatars-mcp")
    async with Client(own) as client:
        tool = declared["avatars-avatars-mcp"][0]
        direct = await client.call_tool(tool, {"name": "a"})
    assert direct.is_error and direct.content[0].text == result.content[0].text


async def test_protected_mcp_adapter_works_with_its_token(gateway: Gateway) -> None:
    own = next(a["url"] for a in gateway.adapters("mcp") if a["namespace"] == "guarded-mcp")
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {SECRETS['GUARD_TOKEN']}"})
    async with Client(streamable_http_client(own, http_client=http)) as client:
        result = await client.call_tool("get-item", {"id": "7"})
    assert not result.is_error and json.loads(result.content[0].text)["path"] == "/items/7"


# ------------------------------------------------------------------ pages


def _chromium_dom(url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="naftiko-chromium-") as profile:
        completed = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                *extra,
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="chromium is not installed (scripts/setup installs it)"
)


@needs_chromium
def test_catalogue_renders_in_chromium_and_escapes_document_text(gateway: Gateway) -> None:
    dom = _chromium_dom(gateway.url + "/")
    soup = BeautifulSoup(dom, "html.parser")
    sections = soup.select("section.capability")
    assert len(sections) == len(OK) + len(DEGRADED) + len(CRAFTED)
    assert soup.title.get_text().startswith("naftiko gateway")  # no injected script ran
    states = [s.select_one("p.status .state").get_text() for s in sections]
    assert states.count("degraded") == len(DEGRADED)
    degraded = [s for s in sections if "degraded" in s.select_one("p.status").get_text()]
    assert all("is not set" in s.select_one("p.status").get_text() for s in degraded)
    # Every open REST adapter links to its docs page and every operation is listed; the
    # protected document's adapters are named, marked, and nothing more.
    rest = [a for a in gateway.adapters("rest") if a["namespace"] != "guarded-rest"]
    assert len(soup.select('a[href$="/docs"]')) == len(rest)
    guarded = next(s for s in sections if "guarded.yaml" in s.select_one("p.file").get_text())
    assert len(guarded.select("p.protected")) == 2
    assert not guarded.select("tr") and not guarded.select("p.description")
    assert "One item." not in guarded.get_text()
    assert len(soup.select("tr.operation")) >= 200
    assert len(soup.select("tr.tool")) >= 250
    # The injected markup is text: no script, image or handler came from a document.
    assert not soup.select("script") and not soup.select("img")
    assert not [tag for tag in soup.find_all(True) if any(a.startswith("on") for a in tag.attrs)]
    injected = next(s for s in sections if "xss.yaml" in s.select_one("p.file").get_text())
    assert XSS in injected.select_one("h2.label").get_text()
    assert XSS in injected.select_one("p.description").get_text()
    assert XSS in injected.select_one("tr.tool").get_text()


@needs_chromium
def test_docs_page_renders_the_openapi_document_with_local_assets(gateway: Gateway) -> None:
    dom = _chromium_dom(gateway.url + "/xss-rest/docs", "--virtual-time-budget=10000")
    soup = BeautifulSoup(dom, "html.parser")
    assert soup.select(".swagger-ui"), dom[:2000]
    assert "/things" in soup.get_text()
    assert not soup.select('script[src^="http"]')  # nothing from a CDN
    page = httpx.get(gateway.url + "/xss-rest/docs")
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_skill_adapter_under_its_prefix(gateway: Gateway) -> None:
    (skill,) = gateway.adapters("skill")
    catalogue = httpx.get(skill["url"] + "/skills").json()
    assert catalogue["count"] >= 1
    name = catalogue["skills"][0]["name"]
    assert httpx.get(f"{skill['url']}/skills/{name}").status_code == 200
    assert httpx.get(f"{skill['url']}/skills/nope").status_code == 404


def test_control_endpoints_on_the_gateway_port(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/health/live").json() == {"status": "UP"}
    ready = httpx.get(gateway.url + "/health/ready")
    assert ready.status_code == 200
    assert "naftiko_" in httpx.get(gateway.url + "/metrics").text
    status = gateway.status
    assert len(status["capabilities"]) == len(OK) + len(DEGRADED) + len(CRAFTED)
    reasons = [c.get("reason", "") for c in status["capabilities"] if c["state"] == "degraded"]
    assert len(reasons) == len(DEGRADED) and all("is not set" in r for r in reasons)
    members = [a for a in status["adapters"] if a["type"] != "gateway"]
    assert all(re.match(r"http://127\.0\.0\.1:\d+/[^/]+", a["url"]) for a in members)
    print(f"start to ready for {len(status['capabilities'])} documents: {gateway.ready_s:.2f}s")
