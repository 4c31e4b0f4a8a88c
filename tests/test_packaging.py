"""The wheel is the product: built from the checkout, installed in a fresh venv, run from a folder elsewhere.

The slow test builds the wheel offline (no build isolation: setuptools comes from the dev venv),
installs it alone into a new virtual environment, and runs ``demo seed``, ``faq``, a console chat and
``serve`` from a temporary folder, with neither the checkout nor its ``templates/`` and ``knowledge/``
anywhere on the path: the wheel's own files must be enough. The third-party dependencies are the dev
venv's, reached through a ``.pth`` line placed after the new venv's own packages (the tests may not
download anything).

No container engine runs here, so the container files are checked for what can be checked without
one: the compose file parses and wires the services as documented, and the image's command exists in
the wheel.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import tomllib
import urllib.request
import zipfile
from pathlib import Path
from typing import IO, Any

import pytest
import yaml
from setuptools import find_packages

import bot
from tests.test_serve import free_port

ROOT = Path(__file__).resolve().parent.parent
# What the wheel (and the image) is built from; the .dockerignore lets exactly these through.
BUILD_INPUTS = ("pyproject.toml", "README.md", "bot", "templates", "knowledge")
# A hang guard for each command, not a measure of speed.
COMMAND_TIMEOUT = 300


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# --- fast checks of the packaging configuration --------------------------------------------------------------


def test_every_package_is_listed_for_the_wheel() -> None:
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    found = set(find_packages(where=str(ROOT), include=["bot", "bot.*"]))
    shipped_as_data = {"bot.storage.migrations"}  # its files are package data of bot.storage
    assert found - shipped_as_data <= listed, f"add to [tool.setuptools] packages: {found - shipped_as_data - listed}"
    assert {"bot.data.templates", "bot.data.knowledge"} <= listed


def test_the_version_is_written_once_and_in_the_changelog() -> None:
    project = pyproject()["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bot.__version__"}
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[?{re.escape(bot.__version__)}\]?", changelog, re.MULTILINE), "no CHANGELOG entry"


def test_compose_runs_migrations_once_before_the_bot() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"db", "migrate", "bot"}
    db, migrate, bot_service = services["db"], services["migrate"], services["bot"]
    assert db["image"].split(":")[1].startswith("16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert bot_service["command"] == ["serve"]
    assert bot_service["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert "/healthz" in " ".join(bot_service["healthcheck"]["test"])
    for service in (migrate, bot_service):
        assert service["image"] == bot_service["image"]
        assert service["environment"]["UNLOCKBOT_DATABASE__URL"].startswith("postgresql+psycopg://unlockbot:")
        assert "@db:5432/unlockbot" in service["environment"]["UNLOCKBOT_DATABASE__URL"]
    assert set(compose["volumes"]) == {"db-data", "bot-data"}


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, one per item (continued lines joined)."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def instruction(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in dockerfile() if line.split(None, 1)[0] == name]


def test_the_image_runs_serve_as_a_user_with_a_health_check() -> None:
    bases = instruction("FROM")
    assert all(base.startswith("python:${PYTHON_VERSION}-slim") for base in bases)
    (user,) = instruction("USER")
    assert user not in ("root", "0")
    (healthcheck,) = instruction("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert json.loads(instruction("ENTRYPOINT")[-1]) == ["unlockbot"]
    assert json.loads(instruction("CMD")[-1]) == ["serve"]
    sources = {source for line in instruction("COPY") if not line.startswith("--from") for source in line.split()[:-1]}
    assert sources == {*BUILD_INPUTS, "constraints.txt"}
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"]
    assert sorted(allowed) == sorted((*BUILD_INPUTS, "constraints.txt"))


# --- the wheel, installed and run elsewhere -------------------------------------------------------------------


def run(*args: str | Path, cwd: Path, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that would lead the new venv back to the checkout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UNLOCKBOT_", "PYTHON", "VIRTUAL_ENV", "PIP_"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of exactly what the build needs."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path_factory.mktemp("dist")
    pip = (sys.executable, "-m", "pip")
    build = ("wheel", "--no-build-isolation", "--no-deps", "--no-index", "-w", dist, source)
    run(*pip, *build, cwd=source, env=clean_environment())
    (wheel,) = dist.glob(f"unlockbot-{bot.__version__}-py3-none-any.whl")
    return wheel


def shipped(folder: str) -> set[str]:
    return {
        path.relative_to(ROOT / folder).as_posix()
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.slow
def test_the_wheel_carries_templates_knowledge_migrations_and_the_command(built: Path) -> None:
    with zipfile.ZipFile(built) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(f"unlockbot-{bot.__version__}.dist-info/entry_points.txt").decode()
    for folder in ("templates", "knowledge"):
        inside = {name.removeprefix(f"bot/data/{folder}/") for name in names if name.startswith(f"bot/data/{folder}/")}
        assert inside == shipped(folder), f"{folder}/ differs from bot/data/{folder}/ in the wheel"
    migrations = {p.name for p in (ROOT / "bot/storage/migrations/versions").glob("*.py")}
    assert migrations <= {Path(name).name for name in names if "migrations/versions/" in name}
    assert not [name for name in names if name.startswith(("templates/", "knowledge/", "tests/"))]
    # The image's command (ENTRYPOINT ["unlockbot"], CMD ["serve"]) is a console script of the wheel.
    scripts = entry_points.split("[console_scripts]", 1)[1]
    assert re.search(r"^unlockbot\s*=\s*bot\.cli:main$", scripts, re.MULTILINE)


class Lines:
    """A child's standard error, line by line as it comes, waited on with a hang guard."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, fragment: str) -> None:
        while True:
            line = self._queue.get(timeout=COMMAND_TIMEOUT)
            if line is None:
                raise AssertionError(f"ended before {fragment!r}:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if fragment in line:
                return

    def rest(self) -> list[str]:
        while (line := self._queue.get(timeout=COMMAND_TIMEOUT)) is not None:
            self.seen.append(line)
        return self.seen


def fetch(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return response.status, response.read().decode()


@pytest.fixture
def fresh_venv(built: Path, tmp_path: Path) -> Path:
    """A new venv holding the wheel and nothing else of ours; dependencies after its own packages."""
    venv = tmp_path / "venv"
    env = clean_environment()
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    install = ("install", "--no-deps", "--no-index", built)
    run(sys.executable, "-m", "pip", "--python", python, *install, cwd=tmp_path, env=env)
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(run(python, "-c", where, cwd=tmp_path, env=env).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "unlockbot-test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n", encoding="utf-8")
    return venv


@pytest.mark.slow
def test_the_installed_wheel_seeds_answers_chats_and_serves_from_any_folder(fresh_venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_environment()
    python = fresh_venv / "bin" / "python"
    unlockbot = fresh_venv / "bin" / "unlockbot"
    found = "import bot, bot.app; print(bot.__file__); print(bot.app.bundled_dir('templates'))"
    for path in run(python, "-c", found, cwd=elsewhere, env=env).stdout.split():
        assert Path(path).is_relative_to(fresh_venv), path  # the wheel's own files, not the checkout's
    assert run(unlockbot, "--version", cwd=elsewhere, env=env).stdout.strip() == f"unlockbot {bot.__version__}"

    assert "demo seeded" in run(unlockbot, "demo", "seed", cwd=elsewhere, env=env).stdout
    assert (elsewhere / ".unlockbot" / "unlockbot.db").is_file()
    answer = run(unlockbot, "faq", "is my data safe?", "--lang", "en", "--json", cwd=elsewhere, env=env).stdout
    assert json.loads(answer)["answer_id"] == "data-safety"
    code = run(unlockbot, "demo", "code", "alice", cwd=elsewhere, env=env).stdout.strip()
    chat = run(unlockbot, "chat", "--as", "alice", "--lang", "en", cwd=elsewhere, env=env, stdin=f"unlock me\n{code}\n")
    assert "What would you like to do?" in chat.stdout
    assert "your CRM account is unlocked" in chat.stdout

    port = free_port()
    serving = env | {"UNLOCKBOT_HTTP__PORT": str(port), "UNLOCKBOT_LOG__FORMAT": "json"}
    command = [str(unlockbot), "serve"]
    with subprocess.Popen(command, cwd=elsewhere, env=serving, stderr=subprocess.PIPE, text=True) as server:
        assert server.stderr is not None
        lines = Lines(server.stderr)
        try:
            lines.until("listening on")
            assert fetch(port, "/healthz") == (200, '{"status": "ok"}')
            status, ready = fetch(port, "/readyz")
            assert status == 200, ready
            status, metrics = fetch(port, "/metrics")
            assert 'unlockbot_unlock_requests{status="done"} 1.0' in metrics  # alice's unlock, from the database
        finally:
            server.send_signal(signal.SIGTERM)
            stopped = server.wait(timeout=COMMAND_TIMEOUT)
        logged = lines.rest()
    assert stopped == 0, "\n".join(logged)
    assert logged
    for line in logged:
        json.loads(line)  # every line a JSON object
    assert not [line for line in logged if re.search(rf"(?<!\d){code}(?!\d)", line)]
