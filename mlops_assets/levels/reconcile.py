"""Base forecasts of every node made to add up, by hierarchicalforecast's reconcilers.

- BottomUp: each group is the sum of its series' forecasts (what the product did before levels existed).
- MinTrace(ols), MinTrace(wls_struct): a projection that weighs every level's forecast, from the structure only.
- MinTrace(mint_shrink): the same weighed by the base forecasts' in-sample error covariance (shrunk), which
  needs each node's fitted values (``insample``).
- TopDown(forecast_proportions): the bucket's top forecast split among the series in the proportions of their
  own forecasts, period by period and level by level; a series forecast at 0 stays 0 unless all its siblings are.

Intervals: hierarchicalforecast's ``normality`` method, which takes each node's base interval as a normal
standard deviation and carries it through the reconciliation (with MinTrace's covariance). The base intervals
are the zoo's own (native or conformal); the reconciled ones are not recalibrated on the backtest, so their
coverage is what the normal assumption gives (docs/levels.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.levels.hierarchy import Hierarchy

BASE = "Base"
CANDIDATES = ("BottomUp", "MinTrace(mint_shrink)", "MinTrace(ols)", "MinTrace(wls_struct)",
              "TopDown(forecast_proportions)")
# Methods hierarchicalforecast gives no normality intervals for: each node keeps its base interval's widths
# around its reconciled forecast (the bounds are not reconciled; the forecasts are).
TOP_DOWN = "TopDown(forecast_proportions)"
POINT_ONLY = (TOP_DOWN,)
# Methods that reconcile each period from that period's forecasts alone (not from the in-sample errors).
PER_PERIOD = ("BottomUp", "MinTrace(ols)", "MinTrace(wls_struct)", "TopDown(forecast_proportions)")


def reconcilers(methods: list[str], nonnegative: bool = False) -> list:
    from hierarchicalforecast.methods import BottomUp, MinTrace, TopDown

    built = []
    for method in methods:
        if method == "BottomUp":
            built.append(BottomUp())
        elif method == "TopDown(forecast_proportions)":
            built.append(TopDown(method="forecast_proportions"))
        elif method.startswith("MinTrace(") and method.endswith(")"):
            built.append(MinTrace(method=method[len("MinTrace("):-1], nonnegative=nonnegative))
        else:
            raise ValueError(f"unknown reconciliation method {method!r}; known: {list(CANDIDATES)}")
    return built


@dataclass
class Reconciled:
    forecasts: pd.DataFrame  # unique_id, ds, method, y_hat (and lo_<l>, hi_<l>), Base included
    failed: dict[str, str] = field(default_factory=dict)  # method -> why hierarchicalforecast refused it


def reconcile(
    base: pd.DataFrame,
    insample: pd.DataFrame | None,
    hierarchy: Hierarchy,
    methods: list[str],
    levels: list[int] | None = None,
    nonnegative: bool = False,
) -> Reconciled:
    """Long reconciled forecasts of every method that succeeds, Base included, and the methods that failed.

    ``base``: unique_id, ds, y_hat (and lo_<l>, hi_<l>) for every node and the same periods. ``insample``:
    unique_id, ds, y, y_hat (fitted values; NaN where a model has none), needed by mint_shrink and intervals
    (None for the PER_PERIOD methods without intervals).
    ``nonnegative``: sales that cannot be negative: base forecasts and bounds clipped at 0 first, and MinTrace
    solved with non-negative forecasts (a quadratic program), so that every method stays coherent and >= 0.
    A method whose problem is ill-conditioned (mint_shrink on a few near-collinear series) is left out and
    named in ``failed``, never failing the others.
    """
    if nonnegative:
        values = [c for c in base.columns if c == "y_hat" or c.startswith(("lo_", "hi_"))]
        base = base.assign(**{c: base[c].clip(lower=0.0) for c in values})
    y_hat = base.rename(columns={"y_hat": BASE, **{f"{side}_{lv}": f"{BASE}-{side}-{lv}"
                                                   for lv in levels or [] for side in ("lo", "hi")}})
    y_df = insample.rename(columns={"y_hat": BASE}) if insample is not None else None
    tags, s_df = hierarchy.tags(), hierarchy.summing_matrix()
    parts, failed = [_long(base, BASE, "y_hat", levels, "{side}_{lv}")], {}
    point_only = [m for m in methods if levels and m in POINT_ONLY]
    for group, own in (([m for m in methods if m not in point_only], levels), (point_only, None)):
        frame = y_hat if own else y_hat[["unique_id", "ds", BASE]]
        # Unconstrained first: where no reconciled value is negative it is the non-negative solution too.
        for method, found in _in_one_call(frame, y_df, tags, s_df, group, own, False).items():
            if isinstance(found, Exception):
                failed[method] = str(found).splitlines()[0][:200]
                continue
            wide, point = found
            if wide[point].isna().any():  # TopDown's proportions of a group whose series all forecast 0
                failed[method] = "no value for some node and period"
                continue
            part = _long(wide, method, point, own, point + "-{side}-{lv}")
            if nonnegative and method.startswith("MinTrace("):
                part = _nonnegative_where_needed(part, frame, y_df, tags, s_df, method, own)
                if isinstance(part, Exception):
                    failed[method] = str(part).splitlines()[0][:200]
                    continue
            parts.append(_base_widths(part, base, levels, nonnegative) if levels and not own else part)
    out = pd.concat(parts, ignore_index=True)
    if nonnegative:  # the solvers' tolerance (1e-8), and normal lower bounds below 0 for sales that cannot be
        values = [c for c in out.columns if c == "y_hat" or c.startswith("lo_")]
        out[values] = out[values].clip(lower=0.0)
    return Reconciled(out, failed)


def _nonnegative_where_needed(part: pd.DataFrame, frame: pd.DataFrame, y_df: pd.DataFrame | None, tags: dict,
                              s_df: pd.DataFrame, method: str, levels: list[int] | None) -> pd.DataFrame | Exception:
    """MinTrace's rows with the periods where some node came out negative solved again with non-negative series
    (where the unconstrained solution is already >= 0 it is the constrained minimum too).

    hierarchicalforecast's nonnegative=True solves a dense quadratic program per period: about half a second a
    period at a thousand series, minutes per bucket. For the diagonal weights of ols and wls_struct the same
    problem is solved here in a sparse form (sparse_nonnegative), the intervals keeping their widths around the
    moved forecast (normality's standard deviations do not depend on the solve); mint_shrink goes to
    hierarchicalforecast."""
    negative = part.loc[part["y_hat"] < -1e-8, "ds"].unique()
    if not len(negative):
        return part
    weights = {"MinTrace(ols)": "ols", "MinTrace(wls_struct)": "wls_struct"}.get(method)
    if weights is None:
        found = _in_one_call(frame[frame["ds"].isin(negative)], y_df, tags, s_df, [method], levels, True)[method]
        if isinstance(found, Exception):
            return found
        wide, point = found
        solved = _long(wide, method, point, levels, point + "-{side}-{lv}")
        return pd.concat([part[~part["ds"].isin(negative)], solved], ignore_index=True)
    nodes = s_df["unique_id"].astype(str).to_numpy()
    s = s_df.drop(columns="unique_id").to_numpy(dtype=float)
    base = frame[frame["ds"].isin(negative)].pivot(index="unique_id", columns="ds", values=BASE)
    base.index = base.index.astype(str)
    own_rows = pd.Index(nodes).get_indexer(s_df.columns[1:].astype(str))
    moved = pd.DataFrame(s @ sparse_nonnegative(base.reindex(nodes).to_numpy(dtype=float), s, own_rows, weights),
                         index=nodes, columns=base.columns)
    out = part.copy()
    rows = out["ds"].isin(negative).to_numpy()
    keys = pd.MultiIndex.from_arrays([out.loc[rows, "unique_id"], out.loc[rows, "ds"]])
    new = moved.stack().reindex(keys).to_numpy()
    shift = new - out.loc[rows, "y_hat"].to_numpy()
    out.loc[rows, "y_hat"] = new
    for column in [c for c in out.columns if c.startswith(("lo_", "hi_"))]:
        out.loc[rows, column] = out.loc[rows, column].to_numpy() + shift
        if column.startswith("lo_"):
            out.loc[rows, column] = np.minimum(out.loc[rows, column].clip(lower=0.0), out.loc[rows, "y_hat"])
    return out


def sparse_nonnegative(y_hat: np.ndarray, s: np.ndarray, own_rows: np.ndarray, weights: str) -> np.ndarray:
    """The series' reconciled forecasts b >= 0 (n_series x periods) minimising, per period, the weighted squares
    sum_i (y_hat_i - (S b)_i)^2 / w_i over every node i: MinTrace with W = I (ols) or W = diag(S 1)
    (wls_struct), hierarchicalforecast's nonnegative problem. Solved with the groups' sums as variables
    z = U b (U: S's group rows), so the problem is sparse: P diagonal, U's ones as equality constraints.
    ``own_rows``: the row of S of each series (column of S), in column order."""
    import scipy.sparse as sp
    from qpsolvers import solve_qp

    w = np.ones(len(s)) if weights == "ols" else s.sum(axis=1)
    order = np.asarray(own_rows)  # each series' own row, in S's column order
    groups = np.setdiff1d(np.arange(len(s)), order)
    n_b, n_g = s.shape[1], len(groups)
    p = sp.diags(np.concatenate([2.0 / w[order], 2.0 / w[groups]])).tocsc()
    a = sp.hstack([-sp.csc_matrix(s[groups]), sp.identity(n_g, format="csc")]).tocsc()
    g = sp.hstack([-sp.identity(n_b, format="csc"), sp.csc_matrix((n_b, n_g))]).tocsc()
    out = np.zeros((n_b, y_hat.shape[1]))
    for k in range(y_hat.shape[1]):
        y = y_hat[:, k]
        q = np.concatenate([-2.0 * y[order] / w[order], -2.0 * y[groups] / w[groups]])
        x = solve_qp(P=p, q=q, G=g, h=np.zeros(n_b), A=a, b=np.zeros(n_g), solver="clarabel")
        if x is None:
            raise ValueError("the non-negative reconciliation found no solution")
        out[:, k] = np.clip(x[:n_b], 0.0, None)
    return out


def _base_widths(part: pd.DataFrame, base: pd.DataFrame, levels: list[int], nonnegative: bool) -> pd.DataFrame:
    """Bounds of ``part``: each node's base interval widths around its reconciled forecast."""
    keys = ["unique_id", "ds"]
    found = part.merge(base.astype({"unique_id": str}), on=keys, how="left", suffixes=("", "_base"))
    for lv in levels:
        part[f"lo_{lv}"] = (found["y_hat"] - (found["y_hat_base"] - found[f"lo_{lv}"])).to_numpy()
        part[f"hi_{lv}"] = (found["y_hat"] + (found[f"hi_{lv}"] - found["y_hat_base"])).to_numpy()
        if nonnegative:
            part[f"lo_{lv}"] = part[f"lo_{lv}"].clip(lower=0.0)
    return part


def _in_one_call(y_hat: pd.DataFrame, y_df: pd.DataFrame | None, tags: dict, s_df: pd.DataFrame,
                 methods: list[str], levels: list[int] | None,
                 nonnegative: bool) -> dict[str, tuple[pd.DataFrame, str] | Exception]:
    """Each method's wide result and point column, from one hierarchicalforecast call (most of a call's time is
    its preparation of the frames); when that call fails, each method alone, so that one refused method (an
    ill-conditioned mint_shrink) never takes the others with it."""
    from hierarchicalforecast.core import _build_fn_name  # the column names of the pinned 1.5.3

    if not methods:
        return {}
    try:
        built = reconcilers(methods, nonnegative)
        wide = _call(y_hat, y_df, tags, s_df, built, levels)
        return {m: (wide, f"{BASE}/{_build_fn_name(r)}") for m, r in zip(methods, built, strict=True)}
    except Exception as err:  # hierarchicalforecast raises bare Exception for ill-conditioned problems
        if len(methods) == 1:
            return {methods[0]: err}
    out = {}
    for method in methods:
        out.update(_in_one_call(y_hat, y_df, tags, s_df, [method], levels, nonnegative))
    return out


def _call(y_hat: pd.DataFrame, y_df: pd.DataFrame | None, tags: dict, s_df: pd.DataFrame, built: list,
          levels: list[int] | None) -> pd.DataFrame:
    from hierarchicalforecast.core import HierarchicalReconciliation

    engine = HierarchicalReconciliation(reconcilers=built)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*insample observations with NaN.*")
        # qpsolvers, under MinTrace(nonnegative=True), on the matrix layout hierarchicalforecast hands it.
        warnings.filterwarnings("ignore", message="Converted matrix .* to scipy.sparse.csc_matrix")
        return pd.DataFrame(engine.reconcile(Y_hat_df=y_hat, tags=tags, S_df=s_df, Y_df=y_df, level=levels,
                                             intervals_method="normality"))


def _long(wide: pd.DataFrame, method: str, column: str, levels: list[int] | None, bound: str) -> pd.DataFrame:
    part = pd.DataFrame({"unique_id": wide["unique_id"].astype(str).to_numpy(), "ds": wide["ds"].to_numpy(),
                         "method": method, "y_hat": wide[column].to_numpy(dtype=float)})
    for lv in levels or []:
        for side in ("lo", "hi"):
            found = bound.format(side=side, lv=lv)
            part[f"{side}_{lv}"] = wide[found].to_numpy(dtype=float) if found in wide else np.nan
    return part


def coherence_gaps(forecasts: pd.DataFrame, hierarchy: Hierarchy) -> pd.DataFrame:
    """Per reconciled method: the largest |group - sum of its series| over every group and period (0 = coherent).

    ``forecasts``: unique_id, ds, method, y_hat. Base is left out: it is not meant to add up.
    """
    rows = forecasts[forecasts["method"] != BASE]
    members = hierarchy.membership[hierarchy.membership["node"] != hierarchy.membership["unique_id"]]
    bottom = rows.merge(members, on="unique_id").groupby(["method", "node", "ds"])["y_hat"].sum()
    groups = rows.set_index(["method", "unique_id", "ds"])["y_hat"].rename_axis(["method", "node", "ds"])
    gap = (groups.reindex(bottom.index) - bottom).abs()
    scale = np.maximum(bottom.abs(), 1.0)
    return pd.DataFrame({"max_gap": gap.groupby(level="method").max(),
                         "max_relative_gap": (gap / scale).groupby(level="method").max()}).reset_index()
