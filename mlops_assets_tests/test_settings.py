"""Settings: a series file's own columns declared as regressors."""

from __future__ import annotations

import re
from datetime import date

import pytest
from pydantic import ValidationError

from mlops_assets.settings import Settings, load_settings


def _series(**regressors: object) -> Settings:
    return Settings(source="series", regressors=regressors)


def test_declared_series_columns_are_used_unless_use_says_otherwise():
    settings = _series(series_columns={"price": "last_known", "promo_flag": "planned"})
    assert settings.regressors.use == ["promo_depth", "holiday_days", "price", "promo_flag"]
    assert settings.regressors.unknown_future == ["price"]
    chosen = _series(series_columns={"price": "last_known", "promo_flag": "planned"}, use=["promo_flag"])
    assert chosen.regressors.use == ["promo_flag"] and chosen.regressors.unknown_future == ["price"]
    assert Settings().regressors.use == ["promo_depth", "holiday_days"]
    # A settings dump read back is the same settings (the registry's fingerprint relies on it).
    assert Settings.model_validate(settings.model_dump()) == settings


@pytest.mark.parametrize(("regressors", "message"), [
    ({"use": ["price"]}, "regressors.use names unknown regressors ['price']"),
    ({"series_columns": {"sell price": "planned"}}, "must be letters, digits and '_'"),
    ({"series_columns": {"Y": "planned"}}, "already a column of the series file"),
    ({"series_columns": {"price": "planned", "Price": "last_known"}}, "differ only in case"),
    ({"series_columns": {"price": "sometimes"}}, "'planned' or 'last_known'"),
    ({"series_columns": {"price": "planned"}, "last_known": ["price"]}, "declared planned"),
])
def test_bad_declarations_are_refused_with_the_reason(regressors, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        _series(**regressors)


def test_series_columns_need_series_files():
    with pytest.raises(ValidationError, match="columns of series files"):
        Settings(regressors={"series_columns": {"price": "last_known"}})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("horizon: 13\nclosed:\n  weekdays: [sun\n", r"settings\.yaml line 4, column 1: not valid YAML"),
        ("frequency: D\nclosed:\n  dates: [2024-13-45]\n", r"closed\.dates\.0: .*date.*\(got '2024-13-45'\)"),
        ("models: [Naive, NoSuchModel]\n", r"models: unknown model name\(s\) \['NoSuchModel'\]"),
        ("- horizon: 13\n", r"holds list"),
    ],
    ids=["yaml syntax", "impossible date", "unknown model", "not a mapping"],
)
def test_a_bad_settings_file_is_named_with_the_line_or_key(tmp_path, text, named):
    file = tmp_path / "settings.yaml"
    file.write_text(text)
    with pytest.raises(ValueError) as raised:
        load_settings(file)
    message = str(raised.value)
    assert message.startswith(f"settings file {file}"), message
    assert re.search(named, message), message
    assert "<unicode string>" not in message and len(message.splitlines()) <= 2, message


def test_dates_in_a_settings_file_are_still_dates(tmp_path):
    file = tmp_path / "settings.yaml"
    file.write_text("frequency: D\nclosed:\n  dates: [2024-12-25]\ningest:\n  as_of: 2025-06-15\n")
    settings = load_settings(file)
    assert settings.closed.dates == [date(2024, 12, 25)] and settings.ingest.as_of == date(2025, 6, 15)
