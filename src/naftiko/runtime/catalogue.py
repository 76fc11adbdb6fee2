"""The gateway's catalogue page (``GET /``): every capability, adapter, operation and tool.

Plain server-rendered HTML, readable without JavaScript (the page sends a CSP without
any script source). Everything that comes from a document (labels, descriptions, paths,
tool names) is untrusted text: it goes through :func:`html.escape` and into element
text or quoted attributes only; links are built from prefixes, which are URL-safe by
construction (``naftiko.runtime.placement.PREFIX_PATTERN``).

The page is public, so an adapter that declares inbound authentication is shown by its
type, namespace and URL only, marked "requires authentication": none of its operations,
tools, resources, prompts, skills or descriptions (a caller with its credentials reads
them from the adapter itself). A document all of whose adapters are protected keeps its
description to itself too. No bind value or secret is ever on the page.
"""

from __future__ import annotations

from html import escape
from typing import Any

from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.adapters.skill.plan import SkillAdapterPlan
from naftiko.engine.plans import NotImplementedPlan

# The runtime and the gateway's members come in as ``Any``: this module renders what it
# is given and imports neither (they import it).
Member = Runtime = GatewayApp = Any

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin:0}section.capability{border:1px solid #ccc;
border-radius:6px;padding:.8rem 1rem;margin:1rem 0}.state{font-weight:600;padding:0 .4rem;
border-radius:4px}.ok{background:#dfd}.degraded{background:#fdd}code{font-size:.9em}
ul{margin:.3rem 0}.file,.muted{color:#666}table{border-collapse:collapse}
td,th{padding:.1rem .6rem .1rem 0;text-align:left;vertical-align:top}
"""


def _text(value: Any) -> str:
    return escape("" if value is None else str(value))


def _link(href: str, label: str) -> str:
    return f'<a href="{escape(href, quote=True)}">{_text(label)}</a>'


def _stub(unit: Any) -> str:
    plan = getattr(unit, "plan", None)
    if isinstance(plan, NotImplementedPlan):
        return f' <span class="state degraded">answers 501: {_text(plan.reason)}</span>'
    return ""


def _rest(member: Member, plan: RestAdapterPlan) -> list[str]:
    prefix = member.prefix
    out = [
        "<p>",
        _link(f"/{prefix}/docs", "API docs"),
        " · ",
        _link(f"/{prefix}/.well-known/openapi.json", "OpenAPI document"),
        "</p><table><tr><th>Operation</th><th>Description</th></tr>",
    ]
    for route in plan.routes:
        for method, unit in route.operations.items():
            description = unit.description or route.description or unit.name
            out.append(
                f'<tr class="operation"><td><code>{_text(method)} /{_text(prefix)}'
                f"{_text(route.path)}</code></td><td>{_text(description)}{_stub(unit)}</td></tr>"
            )
        if route.forward is not None:
            out.append(
                f'<tr class="operation"><td><code>* /{_text(prefix)}{_text(route.path)}</code>'
                f"</td><td>forwarded to {_text(route.forward.target_namespace)}</td></tr>"
            )
    out.append("</table>")
    return out


def _protected(plan: Any) -> bool:
    return getattr(plan, "authentication", None) is not None


def _mcp(member: Member, plan: McpAdapterPlan, app: GatewayApp, tool_names: Any) -> list[str]:
    prefix = member.prefix
    aggregated = prefix in app.runtime.gateway.aggregated
    note = (
        "its tools are also in the aggregate endpoint " + _link("/mcp", "/mcp") + " as named below"
        if aggregated
        else "its tools are only at its own endpoint"
    )
    out = [f'<p class="muted">{note}</p>']
    out.append("<table><tr><th>Tool</th><th>In /mcp</th><th>Description</th></tr>")
    for unit in plan.tools:
        public = tool_names.get((prefix, unit.name), "") if aggregated else ""
        description = unit.description or unit.title or ""
        out.append(
            f'<tr class="tool"><td><code>{_text(unit.name)}</code></td>'
            f"<td><code>{_text(public)}</code></td><td>{_text(description)}{_stub(unit)}</td></tr>"
        )
    out.append("</table>")
    if plan.resources:
        items = "".join(f"<li><code>{_text(r.uri)}</code></li>" for r in plan.resources)
        out.append(f"<p>Resources:</p><ul>{items}</ul>")
    if plan.prompts:
        items = "".join(f"<li><code>{_text(p.name)}</code></li>" for p in plan.prompts)
        out.append(f"<p>Prompts:</p><ul>{items}</ul>")
    return out


def _skill(member: Member, plan: SkillAdapterPlan) -> list[str]:
    items = "".join(f"<li><code>{_text(s.name)}</code></li>" for s in plan.skills)
    return [f"<ul>{items}</ul>"]


def render_catalogue(runtime: Runtime, app: GatewayApp) -> bytes:
    """The whole page, rendered from the runtime's current state."""
    parts = runtime.gateway
    by_capability: dict[Any, list[Member]] = {}
    for member in parts.members:
        by_capability.setdefault(id(member.served.slot.capability), []).append(member)
    capabilities = list(runtime.capabilities.values())
    degraded = sum(1 for c in capabilities if c.problems)
    out = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>naftiko gateway: {len(capabilities)} capabilities</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>naftiko gateway</h1>",
        f'<p id="summary">{len(capabilities)} capabilities, {degraded} degraded. '
        f"Every MCP tool: {_link('/mcp', '/mcp')} (streamable HTTP). Health: "
        f"{_link('/health/ready', '/health/ready')} · {_link('/status', '/status')} · "
        f"{_link('/metrics', '/metrics')}</p>",
    ]
    for capability in capabilities:
        info = capability.loaded.document.info
        description = info.description if info is not None else None
        state = (
            f'<span class="state degraded">degraded</span> {_text(capability.problems)}'
            if capability.problems
            else '<span class="state ok">ok</span>'
        )
        out += [
            '<section class="capability">',
            f'<h2 class="label">{_text(capability.label)}</h2>',
            f'<p class="file">{_text(capability.path)}</p>',
            f'<p class="status">State: {state}</p>',
        ]
        members = by_capability.get(id(capability), [])
        hidden = bool(members) and all(_protected(m.served.slot.plan) for m in members)
        if description and not hidden:
            out.append(f'<p class="description">{_text(description)}</p>')
        for member in members:
            plan = member.served.slot.plan
            href = f"/{member.prefix}" + ("/mcp" if isinstance(plan, McpAdapterPlan) else "")
            out.append(
                f'<h3 class="adapter">{_text(plan.type)} {_text(plan.namespace)}: '
                f"{_link(href, member.served.url or href)}</h3>"
            )
            if _protected(plan):
                out.append('<p class="muted protected">requires authentication</p>')
                continue
            if plan.description:
                out.append(f'<p class="muted">{_text(plan.description)}</p>')
            if isinstance(plan, RestAdapterPlan):
                out += _rest(member, plan)
            elif isinstance(plan, McpAdapterPlan):
                out += _mcp(member, plan, app, parts.tool_names)
            elif isinstance(plan, SkillAdapterPlan):
                out += _skill(member, plan)
        out.append("</section>")
    for path, reason in runtime.refused.items():
        out += [
            '<section class="capability refused">',
            f'<h2 class="label">{_text(path.name)}</h2>',
            f'<p class="file">{_text(path)}</p>',
            f'<p class="status">State: <span class="state degraded">not served</span> '
            f"{_text(reason)}</p>",
            "</section>",
        ]
    out.append("</body></html>")
    return "\n".join(out).encode()
