"""The README's cron and systemd recipes are exactly what the command prints."""

from __future__ import annotations

from tests.recipes_doc import REPO, documented


def test_readme_recipes_are_what_canary_schedule_prints(tmp_path):
    units, cron = documented(tmp_path / "p")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"```\n{cron}```" in readme
    assert f"```ini\n{units}```" in readme
