"""Errors of the work packages as Dagster failures, with what the UI should show about them."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from mlops_assets.forecasting.engine import TaskFailure


@contextmanager
def engine_failures() -> Iterator[None]:
    """Tasks of the engine that failed after their retries fail the step, listing their series."""
    try:
        yield
    except TaskFailure as err:
        raise dg.Failure(description=str(err), metadata={
            "failed_series": dg.MetadataValue.json({b.name: list(b.unique_ids) for b in err.failed}),
        }) from err
