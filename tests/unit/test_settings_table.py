"""README.md's settings tables list exactly the environment variables there are.

"There are", from the code itself, never from a list kept by hand:

- the fields of `shared.config.Config` and `live_service.settings.LiveSettings` that name a
  variable (`setting("NAME", ...)`);
- every literal name the Python packages read: `os.environ["NAME"]`, `os.environ.get("NAME")`,
  `os.getenv("NAME")`, or a call to a reader whose name has `env` in it (`env_int("NAME", ...)`,
  devstack's `_int_env("NAME", ...)`), tests excepted;
- the gateway's `{$NAME}` / `{$NAME:default}` / `{env.NAME}` placeholders in gateway/Caddyfile;
- docker-compose.yml's `${NAME...}` interpolations, and the Dockerfile's `${NAME}` references
  and `ENV NAME=` defaults (but for Python's and pip's own build switches, PYTHON* / PIP_*).

The README side: every backticked name in the first column of the tables under
"## Configuration" (a row may name several: `` `A` / `B` `` or `` `A`, `B` ``).

The `NAME_FILE` forms of string settings are described once in the prose, not in the tables.
"""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

from live_service.settings import LiveSettings
from shared.config import Config, env_names

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
PACKAGES = (
    "shared",
    "schedule_service",
    "booking_service",
    "live_service",
    "gateway",
    "devstack",
    "bench",
)
NAME = re.compile(r"[A-Z][A-Z0-9_]*")
CADDY_PLACEHOLDER = re.compile(r"\{(?:\$|env\.)([A-Z][A-Z0-9_]*)")
SHELL_REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")
DOCKER_ENV = re.compile(r"^ENV\s+(.*?)(?=^\S|\Z)", re.MULTILINE | re.DOTALL)
DOCKER_ENV_NAME = re.compile(r"(?:^|\s)([A-Z][A-Z0-9_]*)=")
BUILD_SWITCHES = ("PYTHON", "PIP_")


def readme_table_names(text: str) -> set[str]:
    """The names in the first column of the tables of README.md's "## Configuration"."""
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        first = line.split("|")[1]
        names.update(n for n in re.findall(r"`([^`]*)`", first) if NAME.fullmatch(n))
    return names


def _dotted(node: ast.AST) -> str:
    """`os.environ.get` for an attribute chain, `env_int` for a name, else ""."""
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _literal_name(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        if NAME.fullmatch(node.value):
            return node.value
    return None


def python_reads(source: str) -> set[str]:
    """The literal variable names a module's code reads from the environment."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args:
            callee = _dotted(node.func).rsplit(".", 1)[-1].lower()
            reads = "env" in callee or _dotted(node.func).endswith("environ.get")
            if reads and (name := _literal_name(node.args[0])):
                names.add(name)
        elif isinstance(node, ast.Subscript) and _dotted(node.value).endswith("environ"):
            if name := _literal_name(node.slice):
                names.add(name)
    return names


def without_comments(path: Path) -> str:
    """A Caddyfile's, compose file's or Dockerfile's text without its comment lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def code_names() -> set[str]:
    """Every environment variable the code, the gateway and the images read."""
    names = set(env_names(Config)) | set(env_names(LiveSettings))
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            names |= python_reads(path.read_text(encoding="utf-8"))
    names |= set(CADDY_PLACEHOLDER.findall(without_comments(ROOT / "gateway" / "Caddyfile")))
    names |= set(SHELL_REFERENCE.findall(without_comments(ROOT / "docker-compose.yml")))
    dockerfile = without_comments(ROOT / "Dockerfile")
    names |= set(SHELL_REFERENCE.findall(dockerfile))
    for block in DOCKER_ENV.findall(dockerfile):
        names |= {n for n in DOCKER_ENV_NAME.findall(block) if not n.startswith(BUILD_SWITCHES)}
    return names


def test_readme_lists_exactly_the_settings_there_are():
    documented = readme_table_names((ROOT / "README.md").read_text(encoding="utf-8"))
    read = code_names()
    undocumented, unread = sorted(read - documented), sorted(documented - read)
    assert not undocumented, f"read by the code, missing from README's tables: {undocumented}"
    assert not unread, f"in README's settings tables, read by nothing: {unread}"


def test_every_config_field_names_a_variable():
    """A Config field without `setting(...)` would silently never be read."""
    assert len(env_names(Config)) == len(Config.__dataclass_fields__)
    assert len(set(env_names(Config))) == len(env_names(Config))
    # The live service's other fields are Config's, taken from it by name.
    shared = {f.name for f in fields(LiveSettings) if "env" not in f.metadata}
    assert shared <= {f.name for f in fields(Config)}


def test_the_scan_sees_every_kind_of_read():
    """The scanner itself: each way of reading a variable is found, nothing else is."""
    source = (
        "import os\n"
        'a = os.environ["A_ONE"]\n'
        'b = os.environ.get("B_TWO", "x")\n'
        'c = os.getenv("C_THREE")\n'
        'd = env_float("D_FOUR", 1.0)\n'
        'e = _int_env("E_FIVE", 2)\n'
        'f = request.environ.get("wsgi.input")\n'
        'g = print("NOT_READ")\n'
    )
    assert python_reads(source) == {"A_ONE", "B_TWO", "C_THREE", "D_FOUR", "E_FIVE"}
    readme = (
        "## Configuration\n\n| Variable | Default | Meaning |\n|---|---|---|\n"
        "| `ONE` * | `1` | `NOT_A_NAME_COLUMN` |\n| `TWO` / `THREE`, `FOUR` | x | y |\n"
        "\n## Operations\n\n| `LATER` | x | y |\n"
    )
    assert readme_table_names("intro\n" + readme) == {"ONE", "TWO", "THREE", "FOUR"}
