"""The wheel, installed where the repository is out of reach, serves the page.

``pip install .`` must give a working ossgate, not only a ``server`` package: the page's
templates and static files (the ali-oss bundle that ``make`` copies in included), the
LICENSE and the ``py.typed`` marker. The test builds the wheel offline from a copy of the
sources (so no ``build/`` or ``*.egg-info`` is left in the repository), installs it into a
fresh virtual environment that sees the project's dependencies but not its editable install,
and runs ``ossgate run`` from a temporary directory against the emulator.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from server.emulator.runner import Emulator
from tests.server.processes import ROOT, clean_environment, free_port, log_tail, stop_process
from tests.server.tokens import SECRET

#: What a build needs from the checkout (setup.cfg's metadata reads README.md).
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "server", "templates", "static")
VENDOR_BUNDLE = "static/vendor/aliyun-oss-sdk.min.js"
#: The page and the files it (or another origin's page) loads, as ``GET`` paths.
SERVED_FILES = (
    "static/ossgate-upload.js",
    "static/upload/options.js",
    VENDOR_BUNDLE,
    "static/app.js",
    "static/app.css",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a copy of the sources, offline and without build isolation."""
    assert (ROOT / VENDOR_BUNDLE).is_file(), f"{VENDOR_BUNDLE} is missing: run `make` first"
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(
                path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--wheel-dir", str(dist), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    [built] = dist.glob("ossgate-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel installed; its ``bin`` folder.

    Its dependencies come from the project's environment through a ``.pth`` line naming that
    site-packages folder. Such a line only adds the folder to ``sys.path``: the ``.pth``
    files inside it, among them the editable install's finder that maps ``server`` to the
    repository, are not run. So ``server`` can only come from the wheel.
    """
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)],
        check=True, timeout=120,
    )  # fmt: skip
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    project = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "ossgate-test-dependencies.pth").write_text("\n".join(project) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return venv / "bin"


def test_the_wheel_carries_the_page_the_license_and_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "server/py.typed" in names
    assert any(n.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in n for n in names)
    assert "server/templates/index.html" in names
    for folder in ("static", "templates"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file():
                assert f"server/{path.relative_to(ROOT)}" in names, path
    # setup.cfg lists the packages one by one (package_dir needs it): none may be forgotten.
    for path in (ROOT / "server").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert str(path.relative_to(ROOT)) in names, path
    assert not [n for n in names if n.split("/")[0] in {"templates", "static", "tests"}]


@pytest.fixture
def served_from_wheel(
    installed: Path, emulator: Emulator, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """``ossgate run`` from the installed wheel, in a temporary directory; its URL."""
    port = free_port()
    env = clean_environment(
        {
            **emulator.settings(),
            "OSSGATE_JWT_SECRET": SECRET,
            "OSSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'records.db'}",
        }
    )
    log = tmp_path / "ossgate.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(installed / "ossgate"), "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_tail(log)
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log_tail(log)
            time.sleep(0.1)
        yield url, tmp_path
    finally:
        stop_process(process)


def test_the_installed_wheel_serves_the_page_and_its_files(
    installed: Path, served_from_wheel: tuple[str, Path]
) -> None:
    url, workdir = served_from_wheel
    # What runs is the installed copy, not the repository (whose server/ is out of reach).
    where = subprocess.run(
        [str(installed / "python"), "-c",
         "import server.app, server.web.pages; print(server.app.__file__)"],
        cwd=workdir, env=clean_environment(), check=True, capture_output=True, text=True,
        timeout=60,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(installed.parent), where

    page = requests.get(f"{url}/", timeout=10)
    assert page.status_code == 200, page.text[:500]
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<!doctype html>" in page.text.lower() and "ossgate" in page.text
    for path in SERVED_FILES:
        response = requests.get(f"{url}/{path}", timeout=10)
        assert response.status_code == 200, path
        assert response.content == (ROOT / path).read_bytes(), path


def test_version_names_ossgate(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(installed / "ossgate"), "--version"],
        cwd=tmp_path, env=clean_environment(), check=True, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "setup.cfg")
    assert result.stdout.strip() == f"ossgate {metadata['metadata']['version']}"
    assert "Flask" not in result.stdout
