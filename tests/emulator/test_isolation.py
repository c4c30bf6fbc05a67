"""The emulator stands apart: it shares no code with the server, so a bug cannot pass both.

Two checks, because either alone has a blind spot: a fresh interpreter that imports every
emulator module and its entry points must hold no other ``server.*`` module (catches imports
through package ``__init__`` files), and a scan of the emulator's source must find no import of
a server module anywhere, including inside functions (catches what only runs later). The
reverse holds too: outside the CLI that starts it, no server module imports the emulator.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
EMULATOR = SERVER / "emulator"

# Only these server modules may start the emulator: the `ossgate emulator` / `ossgate demo`
# commands. None of them may lend it code.
MAY_START_THE_EMULATOR = {"server/cli/__init__.py", "server/cli/demo.py"}

_IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
import server.emulator as emulator
for info in pkgutil.walk_packages(emulator.__path__, "server.emulator."):
    importlib.import_module(info.name)
import server.emulator.runner, server.emulator.cli
print(json.dumps(sorted(
    m for m in sys.modules
    if m.startswith("server.") and not m.startswith("server.emulator")
)))
"""


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement in ``path`` names, with its line, wherever it stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(SERVER.parent).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from server import x` may name a submodule
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def _is_server_module(name: str) -> bool:
    return (name == "server" or name.startswith("server.")) and not name.startswith(
        "server.emulator"
    )


def test_importing_every_emulator_module_loads_no_server_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERYTHING],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=SERVER.parent,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_no_emulator_source_imports_a_server_module() -> None:
    offenders = [
        f"{path.relative_to(SERVER.parent)}:{line} imports {name}"
        for path in sorted(EMULATOR.rglob("*.py"))
        for line, name in _imported_modules(path)
        if _is_server_module(name) and name != "server"
    ]
    assert offenders == []


def test_no_server_module_but_the_cli_imports_the_emulator() -> None:
    offenders = [
        f"{rel}:{line} imports {name}"
        for path in sorted(SERVER.rglob("*.py"))
        if EMULATOR not in path.parents
        and (rel := path.relative_to(SERVER.parent).as_posix()) not in MAY_START_THE_EMULATOR
        for line, name in _imported_modules(path)
        if name.startswith("server.emulator")
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from server.callbacks import verify\n", "server.callbacks"),
        ("def f():\n    import server.config\n", "server.config"),
        ("from ... import config\n", "server.config"),
    ],
)
def test_the_scan_sees_direct_lazy_and_relative_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, expected: str
) -> None:
    """The scan catches a leak written any of these ways: it is not a check that cannot fail."""
    fake_root = tmp_path / "server"
    module = fake_root / "emulator" / "sub" / "leak.py"
    module.parent.mkdir(parents=True)
    module.write_text(source, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "SERVER", fake_root)
    names = [name for _, name in _imported_modules(module)]
    assert any(_is_server_module(n) and n.startswith(expected) for n in names), names
