"""What the site publishes: the stored outputs, after the README's test command has checked them
(DEVELOPING.md, "What the site publishes"). The workflow itself runs only on GitHub; these tests
read it, so that an edit cannot quietly make the site execute something that never ran."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"


def _steps() -> list[dict]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["build"]["steps"]


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.DOTALL)
    command = next(b.strip() for b in blocks if "pytest" in b)
    return command.removeprefix(".venv/bin/")


def test_the_site_is_built_from_the_stored_outputs() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["execute"]["execute_notebooks"] == "off"
    runs = "\n".join(step.get("run", "") for step in _steps())
    assert "execute_notebooks" not in runs, "the workflow must not switch execution on"
    assert "jupyter-book build ." in runs


def test_the_pages_are_checked_before_the_build_on_the_book_model() -> None:
    steps = _steps()
    runs = [step.get("run", "").strip() for step in steps]
    check = runs.index(_readme_test_command())  # "python -m pytest", as the README has it
    build = next(i for i, run in enumerate(runs) if run.startswith("jupyter-book build"))
    assert check < build
    # Offline Hub: the chapters take the branch their stored outputs show (the book's model).
    assert steps[check]["env"]["HF_HUB_OFFLINE"] == "1"


def test_the_workflow_installs_the_pinned_torch_on_cpu() -> None:
    install = next(s["run"] for s in _steps() if "requirements.txt" in s.get("run", ""))
    assert "torch==$(sed -n 's/^torch==//p' requirements.txt)" in install
    assert "whl/cpu" in install
    assert re.search(r"^torch==\d", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
