"""Settings: a series file's own columns declared as regressors."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from mlops_assets.settings import Settings


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
