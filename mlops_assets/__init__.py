"""mlops_assets: raw sales to weekly many-model forecasts, as a Dagster asset graph."""
