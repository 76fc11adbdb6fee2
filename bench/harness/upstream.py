"""The upstream every scenario calls, and nginx as the reverse-proxy baseline.

The default upstream is nginx itself answering with ``return 200 '<static JSON>'``: it
costs microseconds per request, so whatever sits in front of it is what gets measured.
When nginx is not installed (``--quick`` on a clean machine) a tiny raw-ASGI app under
uvicorn stands in (``pyupstream.py``); results then say so.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.system import Service, pinned, wait_for_port

# TikTok's token response (the seven documented fields) and a /v2/video/list-style
# envelope for the mapped GET. Kept free of ``$`` and ``'`` so nginx takes them verbatim.
TOKEN_RESPONSE = {
    "access_token": "act.1a2b3c4d5e6f7g8h9i0jbenchmarkaccesstoken",
    "expires_in": 86400,
    "open_id": "723f24d7-e717-40f8-a2b6-cb8464cd23b4",
    "refresh_expires_in": 31536000,
    "refresh_token": "rft.9i8h7g6f5e4d3c2b1abenchmarkrefreshtoken",
    "scope": "user.info.basic,video.list",
    "token_type": "Bearer",
}
VIDEOS_RESPONSE = {
    "data": {
        "videos": [
            {
                "id": f"73{i:017d}",
                "title": f"Benchmark video {i}",
                "view_count": 1000 + i,
                "duration": 15 + i,
                "cover_image_url": f"https://example.com/cover/{i}.jpg",
            }
            for i in range(5)
        ],
        "cursor": 1700000000000,
        "has_more": True,
    },
    "error": {"code": "ok", "message": "", "log_id": "20261125000000010113006207250BENCH"},
}
TOKEN_PATH = "/v2/oauth/token/"
VIDEOS_PREFIX = "/v2/users/"  # /v2/users/{user_id}/videos/


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def _common(scratch: Path, name: str) -> str:
    """Settings every unprivileged nginx needs: its own pid, logs and temp dirs."""
    tmp = scratch / f"nginx-{name}"
    for sub in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    return f"""
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
"""


def upstream_conf(scratch: Path, port: int) -> str:
    token = json.dumps(TOKEN_RESPONSE, separators=(",", ":"))
    videos = json.dumps(VIDEOS_RESPONSE, separators=(",", ":"))
    return (
        _common(scratch, "upstream")
        + f"""
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        default_type application/json;
        location = {TOKEN_PATH} {{ return 200 '{token}'; }}
        location ~ ^/v2/users/[^/]+/videos/$ {{ return 200 '{videos}'; }}
        location / {{ return 404 '{{"error":"not_found"}}'; }}
    }}
}}
"""
    )


def proxy_conf(scratch: Path, port: int, upstream_port: int) -> str:
    """nginx as a plain reverse proxy with upstream keep-alive (the "physical limit")."""
    return (
        _common(scratch, "proxy")
        + f"""
    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )


@dataclass
class Upstream:
    kind: str  # "nginx" or "python"
    url: str
    service: Service


def start_nginx(scratch: Path, name: str, conf: str, port: int, cpu: str) -> Service:
    path = scratch / f"nginx-{name}.conf"
    path.write_text(conf)
    nginx = nginx_binary()
    assert nginx is not None
    service = Service.start(
        f"nginx-{name}", pinned([nginx, "-c", str(path), "-g", "daemon off;"], cpu), scratch
    )
    wait_for_port(port, proc=service.proc)
    return service


def start_upstream(
    scratch: Path, port: int, cpu: str, python: str, prefer_nginx: bool = True
) -> Upstream:
    """nginx serving static JSON when available, else the Python stand-in."""
    if prefer_nginx and nginx_binary():
        service = start_nginx(scratch, "upstream", upstream_conf(scratch, port), port, cpu)
        return Upstream("nginx", f"http://127.0.0.1:{port}", service)
    script = Path(__file__).with_name("pyupstream.py")
    service = Service.start(
        "python-upstream", pinned([python, str(script), str(port)], cpu), scratch
    )
    service.wait_line(lambda line: line.strip() == "ready", timeout=30)
    return Upstream("python", f"http://127.0.0.1:{port}", service)


if __name__ == "__main__":  # print the generated config, for reading
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 18080
    print(upstream_conf(Path("/tmp/bench-scratch"), port))
