"""Levels above the series: the hierarchy (total / category / brand / product, or declared columns of a series
file), the aggregated series of every level, their base forecasts by the product's zoo, and forecasts made
to add up (reconciled with hierarchicalforecast). A layer beside the bottom-level forecasts: it reads gold
and writes its own tables. No Dagster here; docs/levels.md explains it to a user.
"""
