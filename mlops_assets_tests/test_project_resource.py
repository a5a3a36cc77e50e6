"""The project resource resolves the settings once per run: a settings file edited mid-run changes the next run."""

from __future__ import annotations

import dagster as dg

from mlops_assets.wiring.resources import ProjectResource


def test_settings_are_read_once_per_run_and_again_by_the_next(tmp_path):
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("horizon: 8\n")
    seen = []

    @dg.asset
    def edits_the_file_mid_run(project: ProjectResource) -> None:
        seen.append(project.settings.horizon)
        settings_file.write_text("horizon: 5\n")
        seen.append(project.settings.horizon)

    project = ProjectResource(data_dir=str(tmp_path), settings_file=str(settings_file))
    assert dg.materialize([edits_the_file_mid_run], resources={"project": project}).success
    assert seen == [8, 8], "one run, one reading of the settings"
    assert dg.materialize([edits_the_file_mid_run], resources={"project": project}).success
    assert seen[2:] == [5, 5], "the next run reads the file again"
    assert project.settings.horizon == 5, "outside a run (a sensor, a test): the file as it is now"
