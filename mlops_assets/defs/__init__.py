"""Dagster wiring, one module per asset group; the work itself lives in the plain modules beside."""
