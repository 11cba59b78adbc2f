"""CI (.ci/run) runs the README's test command verbatim."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in ci if line.startswith("pip install torch"))
    assert "python -m pytest" in command
    assert f"```bash\n{command}\n```" in (ROOT / "README.md").read_text()
