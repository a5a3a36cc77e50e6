"""Declared drivers are used by the default zoo, or said to be unused when settings.models leaves them out."""

from pathlib import Path

from mlops_assets.forecasting.zoo import GLOBAL_MODEL, declared_drivers, default_models, unused_drivers
from mlops_assets.settings import Settings, load_settings


def test_declared_drivers_bring_the_global_model_into_every_frequencys_zoo():
    for frequency in ("D", "W-MON", "MS"):
        settings = Settings(frequency=frequency, source="series", regressors={"series_columns": {"promo": "planned"}})
        drivers = declared_drivers(settings)
        assert drivers == ["promo"]
        assert GLOBAL_MODEL in default_models(settings, drivers)
        assert unused_drivers(default_models(settings, drivers), drivers) is None
    # Planned promotions in the data are drivers too; holidays alone are not (every run has them).
    assert declared_drivers(Settings(frequency="MS"), promotions=True) == ["promo_depth"]
    assert declared_drivers(Settings(frequency="MS")) == []
    assert GLOBAL_MODEL not in default_models(Settings(frequency="MS"), [])


def test_models_that_leave_the_drivers_out_are_told_so():
    settings = Settings(frequency="D", source="series", models=["Naive", "SeasonalNaive"],
                        regressors={"series_columns": {"promo": "planned", "price": "last_known"}})
    drivers = declared_drivers(settings)
    models = default_models(settings, drivers)
    assert models == ["Naive", "SeasonalNaive"]
    message = unused_drivers(models, drivers)
    assert message is not None and "['promo', 'price'] are unused" in message and GLOBAL_MODEL in message
    assert unused_drivers(models, []) is None


def test_the_daily_example_settings_declare_drivers_the_zoo_uses():
    settings_dir = Path(__file__).resolve().parents[2] / "settings"
    for name in ("favorita_daily.yaml", "m5_daily.yaml"):
        settings = load_settings(settings_dir / name)
        drivers = declared_drivers(settings)
        assert settings.frequency == "D" and drivers, name
        assert GLOBAL_MODEL in default_models(settings, drivers)
