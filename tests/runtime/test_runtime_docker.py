"""The container image: the Dockerfile's required properties, and its install steps.

There is no Docker engine here, so the build is mirrored: build the package with its
declared backend and install it into a fresh venv (the builder stage's ``pip install .``),
then run the ``naftiko-run`` console script from that venv (the image's ENTRYPOINT).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str, int]]:
    """``(INSTRUCTION, arguments, stage index)`` with continuation lines joined."""
    result: list[tuple[str, str, int]] = []
    stage = -1
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        result.append((keyword.upper(), args.strip(), stage))
    return result


def final_stage() -> list[tuple[str, str]]:
    items = instructions()
    last = max(stage for _, _, stage in items)
    return [(k, a) for k, a, stage in items if stage == last]


def test_multi_stage_on_python_slim() -> None:
    froms = [a for k, a, _ in instructions() if k == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.11-slim") for f in froms)
    runtime = final_stage()
    assert any(k == "COPY" and a.startswith("--from=builder /opt/venv") for k, a in runtime)
    assert not any(k == "RUN" and "pip install" in a for k, a in runtime)


def test_runs_as_non_root_with_exec_form_entrypoint() -> None:
    runtime = dict(final_stage())
    assert runtime["USER"] in ("10001", "10001:10001")
    assert json.loads(runtime["ENTRYPOINT"]) == ["naftiko-run"]  # exec form: PID 1 gets SIGTERM
    assert json.loads(runtime["CMD"]) == ["/capabilities"]
    assert set(runtime["EXPOSE"].split()) >= {"8080", "9090"}


def test_environment_marks_the_container() -> None:
    env_lines = " ".join(a for k, a in final_stage() if k == "ENV")
    assert "NAFTIKO_IN_CONTAINER=1" in env_lines and "PYTHONUNBUFFERED=1" in env_lines
    assert "NAFTIKO_CONTROL_PORT=9091" in env_lines


def test_healthcheck_uses_python_against_readiness() -> None:
    (healthcheck,) = [a for k, a in final_stage() if k == "HEALTHCHECK"]
    assert "curl" not in healthcheck and "wget" not in healthcheck
    command = json.loads(healthcheck.split("CMD", 1)[1].strip())
    assert command[0] == "python" and "urllib.request" in command[2]
    assert "/health/ready" in command[2] and "NAFTIKO_CONTROL_PORT" in command[2]


def test_ca_certificates_installed() -> None:
    runs = " ".join(a for k, a in final_stage() if k == "RUN")
    assert "ca-certificates" in runs


def test_dockerignore_keeps_build_context_small() -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for entry in (".git", ".venv", "tests"):
        assert entry in ignored
    copied = [a for k, a, _ in instructions() if k == "COPY" and not a.startswith("--from")]
    for args in copied:
        for source in shlex.split(args)[:-1]:
            assert source not in ignored and (REPO / source).exists(), source


def test_kubernetes_manifests_are_consistent() -> None:
    docs = {}
    for path in sorted((REPO / "examples" / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    deployment = docs["Deployment"]["spec"]
    assert deployment["replicas"] == 2
    (container,) = deployment["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["envFrom"][0]["secretRef"]["name"] == docs["Secret"]["metadata"]["name"]
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/capabilities"
    volume = deployment["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert {p["port"] for p in docs["Service"]["spec"]["ports"]} == {8080, 9090}
    assert deployment["template"]["spec"]["securityContext"]["runAsUser"] == 10001


@pytest.mark.slow
def test_installed_package_checks_the_tiktok_capability(
    tmp_path: Path, tiktok_capability_path: Path
) -> None:
    """The builder stage's ``pip install .``, then the ENTRYPOINT from that venv.

    Dependencies come from this test's environment (a ``.pth`` file) so the test needs
    the package index only for the build backend, like an image build with a warm cache.
    """
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--quiet", str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if (
        install.returncode != 0
        and "hatchling" in install.stderr
        and "No matching" in (install.stderr)
    ):
        pytest.skip("the build backend is not available from the package index")
    assert install.returncode == 0, install.stderr
    installed = subprocess.check_output(
        [python, "-c", "import naftiko; print(naftiko.__file__)"], text=True
    )
    assert str(site) in installed  # the installed copy, not the source tree
    env = {
        "TIKTOK_FOR_DEVELOPERS_API_KEY": "x" * 8,
        "PATH": str(target / "bin"),
        "NAFTIKO_IN_CONTAINER": "1",
        "NAFTIKO_CONTROL_PORT": "9091",
    }
    check = subprocess.run(
        [target / "bin" / "naftiko-run", "--check", str(tiktok_capability_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "rest tiktok-login-kit-oauth-rest http://0.0.0.0:8080" in check.stdout
    assert "control control http://0.0.0.0:9091" in check.stdout
