"""Pictures for people: rendering, and the plots the run metadata shows (no Dagster here)."""
