"""Turning raw measurements into ratios, target verdicts and a short Markdown page.

Ratios are the figures to read: every row of a table was measured in the same run, on
the same upstream and cores, so machine speed and background noise mostly cancel out.
Absolute requests per second are printed for context only.
"""

from __future__ import annotations

from typing import Any

# Goals from issue 8. "No growth" allows a small tolerance: CPython's allocator and
# httpx's pools settle in steps, a leak grows with the request count.
TARGETS = {
    "rest_throughput_ratio": 0.08,  # naftiko req/s / nginx reverse proxy req/s (min of shapes)
    "added_p99_ms": 2.0,  # at 50% of naftiko's saturation rate
    "mcp_ratio": 2.0,  # naftiko tools/call per s / FastMCP's
    "startup_largest_s": 0.5,  # process start to ready, ~290 entry points
    "idle_rss_mb": 80.0,
    "rss_growth_mb": 2.0,  # warm -> after N requests
}


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 4)


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Throughput and CPU-cost ratios of naftiko against each baseline, per shape."""
    out: dict[str, Any] = {}
    for shape in ("post", "get"):
        rows = _get(results, "rest", shape) or {}
        ours = rows.get("naftiko") or {}
        for base in ("nginx_proxy", "upstream", "stack_floor", "naftiko_baseline"):
            other = rows.get(base) or {}
            out[f"rest_{shape}_vs_{base}_rps"] = _ratio(ours.get("rps"), other.get("rps"))
            # >1 means naftiko spends that many times the CPU per request.
            out[f"rest_{shape}_vs_{base}_cpu_per_request"] = _ratio(
                ours.get("cpu_us_per_request"), other.get("cpu_us_per_request")
            )
        quiet = rows.get("naftiko_log_warning") or {}
        out[f"rest_{shape}_log_warning_vs_info_rps"] = _ratio(quiet.get("rps"), ours.get("rps"))
    mcp = results.get("mcp") or {}
    out["mcp_vs_fastmcp_rps"] = _ratio(_get(mcp, "naftiko", "rps"), _get(mcp, "fastmcp", "rps"))
    out["mcp_vs_fastmcp_cpu_per_request"] = _ratio(
        _get(mcp, "naftiko", "cpu_us_per_request"), _get(mcp, "fastmcp", "cpu_us_per_request")
    )
    out["mcp_vs_naftiko_baseline_cpu_per_request"] = _ratio(
        _get(mcp, "naftiko", "cpu_us_per_request"),
        _get(mcp, "naftiko_baseline", "cpu_us_per_request"),
    )
    return {k: v for k, v in out.items() if v is not None}


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per goal: met True/False, or None when not measured or not comparable."""
    meta = results.get("meta") or {}
    comparable = meta.get("load_generator") == "wrk" and meta.get("upstream") == "nginx"
    caveat = None if comparable else "not comparable: needs wrk and the nginx upstream"
    rat = ratios(results)
    rest_ratios = [rat.get("rest_post_vs_nginx_proxy_rps"), rat.get("rest_get_vs_nginx_proxy_rps")]
    rest_ratio = (
        min(r for r in rest_ratios if r is not None)
        if any(r is not None for r in rest_ratios)
        else None
    )
    memory = results.get("memory") or {}
    rows = [
        (
            "REST throughput vs nginx reverse proxy (worse of POST/GET)",
            "rest_throughput_ratio",
            rest_ratio,
            ">=",
            "x",
            caveat,
        ),
        (
            "added p99 at 50% of saturation (POST)",
            "added_p99_ms",
            _get(results, "rest", "latency_at_half_saturation", "added_p99_ms"),
            "<=",
            " ms",
            caveat,
        ),
        (
            "MCP tools/call vs FastMCP from_openapi",
            "mcp_ratio",
            rat.get("mcp_vs_fastmcp_rps"),
            ">=",
            "x",
            None if meta.get("load_generator") == "wrk" else caveat,
        ),
        (
            "start-up of the largest corpus document",
            "startup_largest_s",
            _get(results, "startup", "largest", "ready_s_median"),
            "<=",
            " s",
            None,
        ),
        (
            "idle RSS (TikTok capability)",
            "idle_rss_mb",
            memory.get("idle_rss_mb"),
            "<=",
            " MB",
            None,
        ),
        (
            f"RSS growth over {memory.get('requests', 'N')} requests",
            "rss_growth_mb",
            memory.get("growth_mb"),
            "<=",
            " MB",
            None,
        ),
    ]
    verdicts = []
    for label, key, value, op, unit, note in rows:
        goal = TARGETS[key]
        met = None if value is None or note else (value >= goal if op == ">=" else value <= goal)
        verdicts.append(
            {
                "target": label,
                "key": key,
                "goal": f"{op} {goal:g}{unit}",
                "value": value,
                "unit": unit.strip(),
                "met": met,
                **({"note": note} if note and value is not None else {}),
            }
        )
    return verdicts


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _rest_table(results: dict[str, Any]) -> list[str]:
    labels = {
        "upstream": "upstream direct (nginx `return 200`)",
        "nginx_proxy": "nginx reverse proxy (keep-alive)",
        "stack_floor": "stack floor: naftiko's server + upstream client, no engine",
        "naftiko": "**naftiko-run** (default: info logs, JSON)",
        "naftiko_log_warning": "naftiko-run `--log-level warning`",
        "naftiko_baseline": "naftiko-run of the `--baseline-src` tree",
    }
    lines = [
        "| server | POST req/s | p50 ms | p99 ms | CPU µs/req | GET req/s | p50 ms | "
        "p99 ms | CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in labels.items():
        post = _get(results, "rest", "post", key)
        get = _get(results, "rest", "get", key)
        if not post and not get:
            continue
        cells = []
        for row in (post or {}, get or {}):
            cells += [
                _fmt(row.get("rps")),
                _fmt(row.get("p50_ms"), 2),
                _fmt(row.get("p99_ms"), 2),
                _fmt(row.get("cpu_us_per_request"), 0),
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    rat = results.get("ratios") or {}
    out = [
        f"# naftiko benchmark ({meta['mode']} run, {meta['date']})",
        "",
        f"Load generator: {meta['load_generator']}; upstream: {meta['upstream']}; "
        f"cores: {meta['cores']}; {meta['machine']['cpus']} CPUs, Python "
        f"{meta['machine']['python']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
        + ".",
        "",
    ]

    out += ["## Targets", "", "| target | goal | measured | met |", "|---|---|---:|---|"]
    for t in results.get("targets", []):
        met = {True: "met", False: "**missed**", None: "-"}[t["met"]]
        value = _fmt(t["value"], 3 if t["unit"] in ("x", "s") else 1)
        note = f" ({t['note']})" if t.get("note") else ""
        out.append(f"| {t['target']} | {t['goal']} | {value} {t['unit']} | {met}{note} |")

    if results.get("rest"):
        out += ["", "## REST (token exchange POST; GET with path, query and output mapping)", ""]
        out += _rest_table(results)
        if rat.get("rest_post_vs_nginx_proxy_rps"):
            out += [
                "",
                "naftiko / nginx reverse proxy: POST "
                f"{_fmt(rat.get('rest_post_vs_nginx_proxy_rps'), 3)}x, GET "
                f"{_fmt(rat.get('rest_get_vs_nginx_proxy_rps'), 3)}x req/s; CPU per request "
                f"{_fmt(rat.get('rest_post_vs_nginx_proxy_cpu_per_request'), 1)}x / "
                f"{_fmt(rat.get('rest_get_vs_nginx_proxy_cpu_per_request'), 1)}x nginx's.",
            ]
        if rat.get("rest_get_vs_stack_floor_cpu_per_request"):
            out += [
                "",
                "CPU per request over the stack floor's (what the engine, the adapter, "
                "logs and metrics add): POST "
                f"{_fmt(rat.get('rest_post_vs_stack_floor_cpu_per_request'), 2)}x, GET "
                f"{_fmt(rat.get('rest_get_vs_stack_floor_cpu_per_request'), 2)}x.",
            ]
        half = _get(results, "rest", "latency_at_half_saturation")
        if half:
            ours, base = half["naftiko"], half["upstream_direct"]
            out += [
                "",
                f"At 50% of naftiko's POST saturation (target {_fmt(half['target_rps'])} "
                f"req/s, {half['connections']} connections, paced): naftiko "
                f"{_fmt(ours['rps'])} req/s p50 {ours['p50_ms']:.2f} / p99 "
                f"{ours['p99_ms']:.2f} ms; upstream direct {_fmt(base['rps'])} req/s p50 "
                f"{base['p50_ms']:.2f} / p99 {base['p99_ms']:.2f} ms; **added p99 "
                f"{half['added_p99_ms']:.2f} ms** (p50 {half['added_p50_ms']:.2f} ms).",
            ]

    mcp = results.get("mcp") or {}
    if mcp:
        out += [
            "",
            "## MCP tools/call (stateless JSON, MCP-Protocol-Version 2025-06-18)",
            "",
            "| server | calls/s | p50 ms | p99 ms | CPU µs/call |",
            "|---|---:|---:|---:|---:|",
        ]
        for key, label in (
            ("naftiko", "**naftiko-run** MCP adapter"),
            ("fastmcp", "FastMCP `from_openapi`"),
            ("naftiko_baseline", "naftiko-run of the `--baseline-src` tree"),
        ):
            row = mcp.get(key)
            if row:
                out.append(
                    f"| {label} | {_fmt(row['rps'])} | {row['p50_ms']:.2f} | "
                    f"{row['p99_ms']:.2f} | {_fmt(row.get('cpu_us_per_request'))} |"
                )
        if rat.get("mcp_vs_fastmcp_rps"):
            out += [
                "",
                f"naftiko / FastMCP: {_fmt(rat.get('mcp_vs_fastmcp_rps'), 2)}x calls/s, "
                f"{_fmt(rat.get('mcp_vs_fastmcp_cpu_per_request'), 2)}x CPU per call.",
            ]

    start = results.get("startup") or {}
    memory = results.get("memory") or {}
    if start or memory:
        out += ["", "## Start-up and memory", ""]
        for key, label in (("tiktok", "TikTok capability"), ("largest", "largest corpus document")):
            row = start.get(key)
            if row:
                extra = (
                    f" (`{row['document']}`, {row['entry_points']} entry points)"
                    if "document" in row
                    else ""
                )
                out.append(
                    f"- {label}{extra}: ready in {row['ready_s_median']:.3f} s "
                    f"(median of {len(row['ready_s_all'])}), peak RSS "
                    f"{row['peak_rss_mb']} MB"
                )
        if start.get("floors"):
            floors = ", ".join(
                f"`{label}` {seconds:.3f} s" for label, seconds in start["floors"].items()
            )
            out.append(f"- floors on the same core (median wall time of `python -c`): {floors}")
        if start.get("validate_corpus"):
            v = start["validate_corpus"]
            out.append(
                f"- `naftiko validate` over the corpus: {v['seconds']} s "
                f"({v['ms_per_document']} ms/document; {v['summary']})"
            )
        if memory:
            out.append(
                f"- TikTok capability RSS: idle {memory['idle_rss_mb']} MB, after "
                f"{memory['warm_after_requests']:,} requests {memory['warm_rss_mb']} MB, "
                f"after {memory['requests']:,} ({memory['rest_requests']:,} REST + "
                f"{memory['mcp_requests']:,} MCP, {memory['errors']} errors) "
                f"{memory['after_rss_mb']} MB: growth {memory['growth_mb']} MB"
            )

    for label, prof in (results.get("profile") or {}).items():
        out += [
            "",
            f"## Profile: {label} ({prof['samples']} py-spy samples, `{prof['collapsed_stacks']}`)",
            "",
            "| self % | frame |",
            "|---:|---|",
        ]
        out += [f"| {f['percent']} | `{f['frame']}` |" for f in prof["self"][:10]]
        out += ["", "| % of samples under | naftiko frame |", "|---:|---|"]
        out += [f"| {f['percent']} | `{f['frame']}` |" for f in prof["under_naftiko_frame"][:8]]

    if results.get("skipped") or results.get("failed"):
        out += ["", "## Skipped and failed", ""]
        out += [f"- skipped: {s['what']}: {s['reason']}" for s in results.get("skipped", [])]
        out += [f"- **failed**: {f['what']}: {f['error']}" for f in results.get("failed", [])]
    return "\n".join(out) + "\n"
