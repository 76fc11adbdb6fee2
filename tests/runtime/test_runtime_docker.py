"""The container image: the Dockerfile's required properties, the lock files, the examples.

Read, not built: ``test_container_image.py`` builds and runs the image (opt-in). The last
test mirrors the builder stage without an engine: build the package with its declared
backend, install it into a fresh venv, run the ``naftiko-run`` console script from it.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sysconfig
import tomllib
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


def image_env() -> dict[str, str]:
    """The final stage's ``ENV NAME=value`` pairs."""
    env = {}
    for keyword, args in final_stage():
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def test_multi_stage_on_python_slim_pinnable_by_digest() -> None:
    (base,) = [a for k, a, stage in instructions() if k == "ARG" and stage == -1]
    assert base.startswith("PYTHON_BASE=python:3.11-slim")  # a build arg: @sha256:... pins it
    froms = [a.split()[0] for k, a, _ in instructions() if k == "FROM"]
    assert froms == ["${PYTHON_BASE}", "${PYTHON_BASE}"]
    runtime = final_stage()
    assert any(k == "COPY" and a.startswith("--from=builder /opt/venv") for k, a in runtime)
    # The base trusts the OS store already: no apt-get (and no index update) at run stage.
    assert not any(k == "RUN" and ("pip install" in a or "apt-get" in a) for k, a in runtime)


def test_dependencies_come_from_the_lock_and_no_installer_ships() -> None:
    runs = [a for k, a, stage in instructions() if k == "RUN" and stage == 0]
    assert any("--require-hashes -r requirements.lock" in a for a in runs)
    assert any("pip install --no-deps ." in a and "uninstall" in a for a in runs)
    uninstall = next(a for a in runs if "uninstall" in a)
    assert "setuptools" in uninstall and "pip" in uninstall.split("uninstall", 1)[1]


def test_runs_as_non_root_with_exec_form_entrypoint() -> None:
    runtime = dict(final_stage())
    assert runtime["USER"] in ("10001", "10001:10001")
    assert json.loads(runtime["ENTRYPOINT"]) == ["naftiko-run"]  # exec form: PID 1 gets SIGTERM
    # Arguments add to the default folder instead of replacing it.
    assert json.loads(runtime["CMD"]) == []
    assert image_env()["NAFTIKO_CAPABILITIES"] == "/capabilities"
    assert "8080" in runtime["EXPOSE"].split()
    # HOME names the user's home, created with it.
    assert image_env()["HOME"] == "/home/naftiko"
    assert any(
        k == "RUN" and "--create-home --home-dir /home/naftiko" in a for k, a in final_stage()
    )


def test_environment_marks_the_container() -> None:
    env = image_env()
    assert env["NAFTIKO_IN_CONTAINER"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    # Health, /metrics and /status for any document: the gateway's port, or a control port.
    assert env.get("NAFTIKO_GATEWAY_PORT") == "8080" or env["NAFTIKO_CONTROL_PORT"] == "9091"


def control_port() -> int:
    """Where the image serves health, /metrics and /status."""
    env = image_env()
    return int(env.get("NAFTIKO_GATEWAY_PORT") or env["NAFTIKO_CONTROL_PORT"])


def test_the_drain_ends_before_the_engines_kill() -> None:
    # docker stop and podman stop send SIGKILL 10 s after SIGTERM by default.
    assert float(image_env()["NAFTIKO_GRACE_PERIOD"]) < 10


def test_the_standard_library_is_compiled_at_build_time() -> None:
    runs = " ".join(a for k, a in final_stage() if k == "RUN")
    assert "compileall" in runs and 'get_path("stdlib")' in runs


def test_healthcheck_uses_python_against_readiness() -> None:
    (healthcheck,) = [a for k, a in final_stage() if k == "HEALTHCHECK"]
    assert "curl" not in healthcheck and "wget" not in healthcheck
    command = json.loads(healthcheck.split("CMD", 1)[1].strip())
    assert command[0] == "python" and "urllib.request" in command[2]
    assert "/health/ready" in command[2] and "NAFTIKO_CONTROL_PORT" in command[2]


def _pins(lock: Path) -> set[str]:
    names = set()
    for line in lock.read_text().splitlines():
        if line and not line[0].isspace() and "==" in line:
            names.add(re.sub(r"[-_.]+", "-", line.split("==", 1)[0]).lower())
    return names


def _names(requirements: list[str]) -> set[str]:
    return {
        re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0]).lower()
        for r in requirements
    }


def test_lock_files_pin_every_declared_dependency() -> None:
    """Run scripts/lock after changing dependencies in pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _names(project["dependencies"])
    dev = _names(project["optional-dependencies"]["dev"])
    assert runtime <= _pins(REPO / "requirements.lock"), "scripts/lock"
    assert runtime | dev <= _pins(REPO / "requirements-dev.lock"), "scripts/lock"
    assert "--require-hashes -r requirements-dev.lock" in (REPO / "scripts" / "setup").read_text()


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
    # The drain and the preStop pause both fit before Kubernetes' SIGKILL.
    env = {e["name"]: e.get("value") for e in container["env"]}
    pause = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace = deployment["template"]["spec"]["terminationGracePeriodSeconds"]
    assert float(env["NAFTIKO_GRACE_PERIOD"]) + pause < grace
    # The probes reach the control endpoints where the image (or the Deployment) puts them;
    # the gateway serves its own and refuses a separate control port.
    assert not ("NAFTIKO_GATEWAY_PORT" in image_env() and "NAFTIKO_CONTROL_PORT" in env)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probed = {
        container[probe]["httpGet"]["port"]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert {ports[name] for name in probed} == {
        int(env.get("NAFTIKO_CONTROL_PORT") or control_port())
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["envFrom"][0]["secretRef"]["name"] == docs["Secret"]["metadata"]["name"]
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/capabilities"
    volume = deployment["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    # The Service publishes what the image serves: the gateway alone, or REST and MCP.
    served = {8080} if "NAFTIKO_GATEWAY_PORT" in image_env() else {8080, 9090}
    assert {p["port"] for p in docs["Service"]["spec"]["ports"]} == served
    assert {p["targetPort"] for p in docs["Service"]["spec"]["ports"]} <= set(ports)
    assert deployment["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_compose_example_parses_and_agrees_with_the_image() -> None:
    directory = REPO / "examples" / "compose"
    compose = yaml.safe_load((directory / "compose.yaml").read_text())
    naftiko = compose["services"]["naftiko"]
    assert (directory / naftiko["build"]["context"] / "Dockerfile").is_file()
    source, target, mode = naftiko["volumes"][0].split(":")
    assert (directory / source).is_dir() and target == "/capabilities" and mode == "ro"
    assert naftiko["read_only"] is True and naftiko["cap_drop"] == ["ALL"]
    grace = float(naftiko["environment"]["NAFTIKO_GRACE_PERIOD"])
    assert grace < float(naftiko["stop_grace_period"].removesuffix("s"))
    published = {int(p.rsplit(":", 1)[1]) for p in naftiko["ports"]}
    control = control_port()
    assert {8080, control} <= published

    prometheus = compose["services"]["prometheus"]
    (mount,) = prometheus["volumes"]
    config_file = directory / mount.split(":")[0]
    (job,) = yaml.safe_load(config_file.read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"naftiko:{control}"]
    assert prometheus["depends_on"]["naftiko"]["condition"] == "service_healthy"
    # Binds come from an env file kept out of git; its example is committed.
    assert (directory / "naftiko.env.example").is_file()
    assert "examples/compose/naftiko.env" in (REPO / ".gitignore").read_text().splitlines()


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
