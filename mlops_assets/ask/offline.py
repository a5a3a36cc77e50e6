"""The offline engine: a question's intent and names (intents.py, names.py) turned into guarded SQL and an answer.

Every query goes through the guard and runs on the read-only snapshot connection (``Context.run``). A question
that fits no intent, or needs a table or column the data does not have, is answered "I can't answer that
from these tables" with examples, never with a guess.
"""

from __future__ import annotations

import pandas as pd

from mlops_assets.ask import charts
from mlops_assets.ask.context import Answer, Context
from mlops_assets.ask.guard import MAX_ROWS
from mlops_assets.ask.intents import OUT_OF_SCOPE, Parsed, mentioned, parse
from mlops_assets.ask.names import Found, find_names

ENGINE = "offline"
SALES = "serving.sales_overall"
MAX_PANELS = 6  # series drawn one panel each; more are summed per product, then per brand
EXAMPLES = [
    "Show a graphic with sales for product Etorki and the prediction from the model, on a line plot",
    "Total sales by brand in 2025",
    "Share of sales by origin (Train vs Predict)",
    "Top 5 products by forecast",
    "This year vs last year by category",
    "Which model wins, and how accurate is each model?",
    "How accurate were past forecasts?",
    "Which series are not forecast and why?",
    "Quels produits ont les intervalles les plus larges ?",
]
_PERIOD_SQL = {"week": "date_trunc('week', ds)", "month": "date_trunc('month', ds)",
               "quarter": "date_trunc('quarter', ds)", "year": "year(ds)"}


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def lit(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _in(column: str, values: list[str]) -> str:
    return f"{column} in ({', '.join(lit(v) for v in values)})"


def cannot(question: str, why: str = "") -> Answer:
    shown = "\n".join(f"  - {e}" for e in EXAMPLES)
    reason = f" ({why})" if why else ""
    return Answer(question, f"I can't answer that from these tables{reason}. Questions I can answer, e.g.:\n{shown}",
                  pd.DataFrame(), [], ENGINE)


def answer(question: str, ctx: Context) -> Answer:
    parsed = parse(question)
    if OUT_OF_SCOPE.search(parsed.text):
        return cannot(question, "they hold units sold and forecast, not that")
    found = find_names(question, ctx.names)
    if found.ambiguous and parsed.intent not in ("excluded", "model_wins") or (found.ambiguous and not found.entities):
        if parsed.intent is not None or parsed.chart or parsed.actual or parsed.forecast or parsed.sales:
            return _ambiguous(question, found)
    handler = _HANDLERS.get(parsed.intent or "")
    if handler is None and parsed.period:
        handler = _totals
    if handler is None and found.entities and (parsed.chart or parsed.actual or parsed.forecast or parsed.sales):
        handler = _series
    if handler is None:
        return cannot(question)
    if handler is _totals and found.entities and not parsed.dimensions and not parsed.period and parsed.chart:
        handler = _series
    result = handler(question, parsed, found, ctx)
    result.sql = list(ctx.sql)
    return result


def _ambiguous(question: str, found: Found) -> Answer:
    words, candidates = found.ambiguous[0]
    table = pd.DataFrame([{"kind": e.kind, "name": e.label, "id": e.name} for e in candidates])
    names = ", ".join(f'"{e.label}"' for e in candidates)
    return Answer(question, f'"{words}" could mean several things: {names}. Ask again with one of them.',
                  table, [], ENGINE)


def _filters(found: Found, ctx: Context, table: str = SALES, alias: str = "") -> list[str]:
    """SQL conditions for the names found, on a table with the sales_overall columns."""
    prefix = f"{alias}." if alias else ""
    columns = ctx.columns(table)
    conditions = []
    for kind, column in (("product", "product_id"), ("brand", "brand"), ("category", "category"),
                         ("customer", "customer_id"), ("channel", "channel"), ("region", "region")):
        names = [e.name for e in found.of(kind)]
        if not names:
            continue
        if column not in columns:
            column = "unique_id" if kind == "product" else None
        if column is None:
            raise LookupError(f"the series are not split by {kind}")
        conditions.append(_in(f"{prefix}{column}", names))
    return conditions


def _where(conditions: list[str]) -> str:
    return f" where {' and '.join(conditions)}" if conditions else ""


def _measure(parsed: Parsed) -> tuple[list[str], str]:
    """The origin condition and how the text names it: actuals by default, the forecast when asked."""
    if parsed.origin:
        return [], "actuals and forecast"
    if parsed.forecast and not parsed.actual or parsed.forecast and "prediction" in parsed.text:
        return ["origin = 'Predict'"], "forecast units"
    return ["origin = 'Train'"], "actual units"


def _names(found: Found) -> str:
    return ", ".join(e.label for e in found.entities)


def _series(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    columns = ctx.columns(SALES)
    bounds = [c for c in columns if c.startswith(("lo_", "hi_"))]
    where = _where(_filters(found, ctx))
    label = "product_name" if "product_name" in columns else "unique_id"
    ids = ctx.run(f"select unique_id, any_value({label}) as label from {SALES}{where} group by unique_id "
                  "order by unique_id")
    if ids.empty:
        return Answer(question, f"{_names(found)} has no actuals or forecast in {SALES}.", ids, [], ENGINE)
    if len(ids) <= MAX_PANELS:
        picked = ", ".join(c for c in bounds)
        rows = ctx.run(f"select unique_id, {label} as label, ds, origin, sales, {picked}, model, model_version "
                       f"from {SALES}{where} order by unique_id, ds, origin", max_rows=100_000)
        rows["label"] = rows["label"].fillna(rows["unique_id"]) + (
            " (" + rows["unique_id"] + ")" if ids["label"].duplicated().any() else "")
    else:
        group = label if ids["label"].nunique() <= MAX_PANELS else None
        key = group or "'total'"
        rows = ctx.run(f"select {key} as label, ds, origin, sum(sales) as sales from {SALES}{where} "
                       "group by all order by label, ds, origin", max_rows=100_000)
        if group is None:
            rows["label"] = _names(found) or "total"
    png = charts.series_chart(rows)
    predict = rows[rows["origin"] == "Predict"]
    parts = []
    for name, part in rows.groupby("label", sort=False):
        ahead = part[part["origin"] == "Predict"]
        last = part[part["origin"] == "Train"]["ds"].max()
        model = ahead["model"].dropna().iloc[0] if "model" in ahead and ahead["model"].notna().any() else None
        parts.append(f"{name}: actuals to {_day(last)}" + (
            f", forecast {ahead['sales'].sum():,.0f} units over the next {len(ahead)} periods"
            + (f" ({model}, version {ahead['model_version'].iloc[0]})" if model else "") if len(ahead) else
            ", no forecast (see: which series are not forecast and why)"))
    text = f"Actuals and forecast of {len(ids)} series" + (
        f" ({_names(found)})" if found.entities else "") + ":\n" + "\n".join(f"  - {p}" for p in parts)
    shown = predict if len(predict) else rows
    return Answer(question, text, shown.reset_index(drop=True), [], ENGINE, png)


def _day(value) -> str:
    return pd.Timestamp(value).date().isoformat() if pd.notna(value) else "never"


def _group(dimension: str, ctx: Context) -> tuple[str, str, str]:
    """(select expression, from clause, what the text calls it) of a dimension, or LookupError."""
    columns = ctx.columns(SALES)
    if dimension == "product":
        # A series without a name (series files need none) is shown by its id.
        return ("coalesce(product_name, unique_id)" if "product_name" in columns else "unique_id"), SALES, "product"
    name = dimension
    if dimension == "origin":
        return "origin", SALES, "origin"
    if name in columns and not _filled(ctx, name):
        raise LookupError(f"the series have no {dimension}: every value of {name} is empty")
    if name in columns:
        return name, SALES, dimension
    raise LookupError(f"the series are not split by {dimension} (the settings' grain is product)")


ORDERS = ("raw.sales_orders", "raw.customers", "raw.products")
_ORDER_FILTERS = (("product", "o.product_id"), ("brand", "p.brand"), ("category", "p.category"),
                  ("customer", "o.customer_id"), ("channel", "c.channel"), ("region", "c.region"))


def _by_customer(dimension: str, ctx: Context) -> bool:
    """Sales by customer, channel or region at the product grain: only the order lines have them."""
    return (dimension in ("customer", "channel", "region") and dimension not in ctx.columns(SALES)
            and "customer_id" not in ctx.columns(SALES) and all(ctx.has(t) for t in ORDERS))


def _orders(question: str, parsed: Parsed, found: Found, ctx: Context, dimension: str, top: int | None) -> Answer:
    """Totals of the order lines' units by customer, channel or region (the series are per product)."""
    column = "customer_name" if dimension == "customer" else dimension
    conditions = [_in(sql, [e.name for e in found.of(kind)]) for kind, sql in _ORDER_FILTERS if found.of(kind)]
    if parsed.year:
        conditions.append(f"year(o.order_date) = {parsed.year}")
    order = "asc" if parsed.bottom and top else "desc"
    frame = ctx.run(f"select c.{column} as {dimension}, round(sum(o.quantity), 2) as units, "
                    "round(100 * sum(o.quantity) / sum(sum(o.quantity)) over (), 2) as share_pct "
                    "from raw.sales_orders o join raw.customers c on c.customer_id = o.customer_id "
                    f"join raw.products p on p.product_id = o.product_id{_where(conditions)} group by all "
                    f"order by units {order}, {dimension}" + (f" limit {top}" if top else ""))
    if frame.empty:
        return Answer(question, "No order lines match.", frame, [], ENGINE)
    scope = f" of {_names(found)}" if found.entities else ""
    title = f"units ordered{scope}" + (f" in {parsed.year}" if parsed.year else "") + f" by {dimension}"
    first = frame.iloc[0]
    text = _upper(f"{title} (from the order lines: the forecasts are per product): {len(frame)} groups, "
            f"{frame['units'].sum():,.0f} units; {'the first' if top else 'the largest'} is {first[dimension]} with "
            f"{first['units']:,.0f} ({first['share_pct']:.1f}%).")
    return Answer(question, text, frame, [], ENGINE, charts.bar_chart(frame, dimension, "units", title))


def _filled(ctx: Context, column: str) -> bool:
    """Whether any row has a value in the column (series files may carry no brand or category)."""
    return bool(ctx.run(f"select count({column}) > 0 as filled from {SALES}", record=False)["filled"].iloc[0])


def _totals(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    dims = [d for d in parsed.dimensions if d != "model"]
    if "model" in parsed.dimensions and not dims:
        return _model_accuracy(question, parsed, found, ctx)
    if len(dims) == 1 and not parsed.period and _by_customer(dims[0], ctx):
        return _orders(question, parsed, found, ctx, dims[0], None)
    try:
        groups = [_group(d, ctx) for d in dims]
        conditions = _filters(found, ctx)
    except LookupError as error:
        return cannot(question, str(error))
    origin, measure = _measure(parsed)
    if parsed.period:
        groups.append((_PERIOD_SQL[parsed.period], SALES, parsed.period))
        if not parsed.forecast and not parsed.actual or parsed.chart and not origin == ["origin = 'Predict'"]:
            origin, measure = [], "actuals and forecast"
    if not origin and not any(g[0] == "origin" for g in groups):
        groups.append(("origin", SALES, "origin"))
    if parsed.year:
        conditions.append(f"year(ds) = {parsed.year}")
    keys = [f"{expression} as {label}" for expression, _, label in groups]
    select = ", ".join([*keys, "round(sum(sales), 2) as units"])
    labels = [label for _, _, label in groups]
    share = ""
    if parsed.share or not parsed.period:
        partition = [lab for lab in labels if lab == "origin" and labels[0] != "origin"]
        over = f"partition by {', '.join(partition)}" if partition else ""
        share = f", round(100 * sum(sales) / sum(sum(sales)) over ({over}), 2) as share_pct"
    order = ", ".join(labels) if parsed.period else "units desc"
    frame = ctx.run(f"select {select}{share} from {SALES}{_where([*conditions, *origin])} "
                    f"group by all order by {order}")
    if frame.empty:
        return Answer(question, "No rows match.", frame, [], ENGINE)
    scope = f" of {_names(found)}" if found.entities else ""
    when = f" in {parsed.year}" if parsed.year else ""
    title = f"{measure}{scope}{when} by {', '.join(labels)}"
    if parsed.period:
        hue = next((lab for lab in labels if lab != parsed.period), None)
        png = charts.line_chart(frame, parsed.period, "units", hue, title)
        text = _upper(f"{title}: {len(frame)} rows" + (f" (the first {len(frame)}: the row limit)" if len(frame)
                      == MAX_ROWS else f", {frame['units'].sum():,.0f} units in all") + ".")
    else:
        label = labels[0]
        bars = frame if len(labels) == 1 else frame.assign(**{label: frame[labels].astype(str).agg(" / ".join, axis=1)})
        png = charts.bar_chart(bars, label, "share_pct" if parsed.share else "units", title)
        top = frame.iloc[0]
        counted = (f"the {len(frame)} largest groups (the row limit)" if len(frame) == MAX_ROWS else
                   f"{len(frame)} groups, {frame['units'].sum():,.0f} units in all")
        text = _upper(f"{title}: {counted}; the largest "
                f"is {' / '.join(str(top[lab]) for lab in labels)} with {top['units']:,.0f} ({top['share_pct']:.1f}%).")
    return Answer(question, text, frame, [], ENGINE, png)


def _top(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    dimension = next((d for d in parsed.dimensions or mentioned(parsed.text) if d not in ("origin", "model")),
                     "product")
    if "model" in parsed.dimensions and not parsed.actual and not parsed.forecast:
        return _model_accuracy(question, parsed, found, ctx)
    n = parsed.n or 5
    if _by_customer(dimension, ctx):
        return _orders(question, parsed, found, ctx, dimension, n)
    try:
        expression, _, label = _group(dimension, ctx)
        conditions = _filters(found, ctx)
    except LookupError as error:
        return cannot(question, str(error))
    origin, measure = _measure(parsed)
    origin = origin or ["origin = 'Train'"]
    if parsed.year:
        conditions.append(f"year(ds) = {parsed.year}")
    direction = "asc" if parsed.bottom else "desc"
    frame = ctx.run(f"select {expression} as {label}, round(sum(sales), 2) as units, "
                    f"round(100 * sum(sales) / sum(sum(sales)) over (), 2) as share_pct from {SALES}"
                    f"{_where([*conditions, *origin])} group by all order by units {direction}, {label} limit {n}")
    which = "bottom" if parsed.bottom else "top"
    title = f"{which} {n} {dimension}s by {measure}" + (f" in {parsed.year}" if parsed.year else "")
    lines = "\n".join(f"  {i + 1}. {r[label]}: {r['units']:,.0f} ({r['share_pct']:.1f}%)"
                      for i, r in frame.iterrows())
    return Answer(question, _upper(f"{title}:\n{lines}"), frame, [], ENGINE,
                  charts.bar_chart(frame, label, "units", title) if len(frame) else None)


def _yoy(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    dims = [d for d in parsed.dimensions if d not in ("origin", "model")]
    try:
        groups = [_group(d, ctx) for d in dims[:1]]
        conditions = _filters(found, ctx, alias="s")
    except LookupError as error:
        return cannot(question, str(error))
    keys = "".join(f"s.{expression} as {label}, " for expression, _, label in groups)
    train = "s.origin = 'Train'"
    by = " group by all order by this_year desc" if groups else ""
    frame = ctx.run(
        f"with bounds as (select max(ds) as last_ds, date_trunc('year', max(ds)) as first_ds from {SALES} "
        f"where origin = 'Train') select {keys}"
        "round(sum(s.sales) filter (where s.ds between b.first_ds and b.last_ds), 2) as this_year, "
        "round(sum(s.sales) filter (where s.ds between b.first_ds - interval 1 year and b.last_ds - interval 1 year)"
        ", 2) as last_year, round(100 * (this_year / nullif(last_year, 0) - 1), 2) as change_pct, "
        "any_value(b.first_ds) as since, any_value(b.last_ds) as until "
        f"from {SALES} s, bounds b{_where([*conditions, train])}{by}")
    if frame.empty or frame["this_year"].isna().all():
        return Answer(question, "No actuals match.", frame, [], ENGINE)
    since, until = _day(frame["since"].iloc[0]), _day(frame["until"].iloc[0])
    frame = frame.drop(columns=["since", "until"])
    scope = f" of {_names(found)}" if found.entities else ""
    total_now, total_then = frame["this_year"].sum(), frame["last_year"].sum()
    change = f"{100 * (total_now / total_then - 1):+.1f}%" if total_then else "no sales last year"
    text = (f"Actual units{scope} from {since} to {until}: {total_now:,.0f}, against {total_then:,.0f} over the same "
            f"weeks a year earlier ({change}).")
    png = None
    if groups:
        label = groups[0][2]
        png = charts.bar_chart(frame, label, "change_pct", f"change in % on last year by {label}")
    return Answer(question, text, frame, [], ENGINE, png)


def _model_wins(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "forecasting.series_champions"
    if not ctx.has(table):
        return cannot(question, f"{table} is not published yet: materialize the forecasts")
    ids = [e.name for e in found.of("product")]
    if ids:
        frame = ctx.run(f"select unique_id, model, round(smape, 2) as smape, runner_up, round(runner_up_smape, 2) "
                        f"as runner_up_smape, round(seasonal_naive_smape, 2) as seasonal_naive_smape from {table} "
                        f"where {_in('unique_id', ids)} order by unique_id")
        lines = [f"  - {r.unique_id}: {r.model} (SMAPE {r.smape}), runner-up {r.runner_up} ({r.runner_up_smape})"
                 for r in frame.itertuples()]
        return Answer(question, "Champion of each series named:\n" + "\n".join(lines) if lines else
                      "That series has no champion: it is not forecast.", frame, [], ENGINE)
    frame = ctx.run(f"select model, count(*) as series, round(100.0 * count(*) / sum(count(*)) over (), 2) as "
                    f"share_pct, round(avg(smape), 2) as mean_smape from {table} group by model "
                    "order by series desc, model")
    top = frame.iloc[0]
    text = (f"{top['model']} wins most often: champion of {top['series']} of {frame['series'].sum()} series "
            f"({top['share_pct']:.1f}%), mean backtest SMAPE {top['mean_smape']}. "
            + "; ".join(f"{r.model} {r.series}" for r in frame.iloc[1:].itertuples()))
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(frame, "model", "series", "series won by each model (champions)"))


def _model_accuracy(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "forecasting.series_evaluation"
    if not ctx.has(table):
        return cannot(question, f"{table} is not published yet: materialize the backtest")
    ids = [e.name for e in found.of("product")]
    where = _where([_in("unique_id", ids)] if ids else [])
    frame = ctx.run(f"select model, count(*) as series, round(avg(smape), 2) as mean_smape, "
                    f"round(median(smape), 2) as median_smape, round(avg(mase), 3) as mean_mase, "
                    f"round(avg(wape), 2) as mean_wape from {table}{where} group by model "
                    "order by mean_smape nulls last, model")
    if frame.empty:
        return Answer(question, "No backtest scores match.", frame, [], ENGINE)
    best = frame.iloc[0]
    scope = f" on {_names(found)}" if ids else f" over {int(frame['series'].max())} series"
    text = (f"Backtest accuracy of each model{scope} (SMAPE 0-200, lower is better): best {best['model']} with mean "
            f"SMAPE {best['mean_smape']}, worst {frame.iloc[-1]['model']} with {frame.iloc[-1]['mean_smape']}.")
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(frame, "model", "mean_smape", "mean backtest SMAPE by model (lower is better)"))


def _past_accuracy(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "monitoring.forecast_accuracy"
    if not ctx.has(table):
        return cannot(question, f"{table} is not published yet")
    columns = ctx.columns(table)
    ids = [e.name for e in found.of("product")]
    where = _where([_in("unique_id", ids)] if ids else [])
    level = max((int(c[3:]) for c in columns if c.startswith("hi_")), default=None)
    covered = (f", round(100 * avg(case when y between lo_{level} and hi_{level} then 1 else 0 end), 1) "
               f"as in_{level}_pct") if level else ""
    by = "horizon_step" if any(w in parsed.text for w in ("horizon", "step", "ahead", "etape")) else "model_version"
    frame = ctx.run(f"select {by}, count(*) as forecasts, count(distinct unique_id) as series, "
                    f"min(ds) as first_ds, max(ds) as last_ds, round(avg(smape), 2) as mean_smape, "
                    f"round(avg(abs_error), 2) as mean_abs_error{covered} from {table}{where} "
                    f"group by {by} order by {by}")
    if frame.empty:
        return Answer(question, "No past forecast has met its actuals yet: monitoring.forecast_accuracy fills in "
                      "once actuals arrive for periods that were forecast.", frame, [], ENGINE)
    total = int(frame["forecasts"].sum())
    mean = (frame["mean_smape"] * frame["forecasts"]).sum() / total
    text = (f"{total} past forecasts have met their actuals, from {_day(frame['first_ds'].min())} to "
            f"{_day(frame['last_ds'].max())}: mean SMAPE {mean:.1f}" + (
                f", {frame[f'in_{level}_pct'].mul(frame['forecasts']).sum() / total:.1f}% inside the {level}% "
                "interval" if level else "") + f" (by {by.replace('_', ' ')} in the table).")
    frame[by] = frame[by].astype(str)
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(frame, by, "mean_smape", f"SMAPE of past forecasts by {by}"))


def _excluded(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "gold.series_excluded"
    if not ctx.has(table):
        return cannot(question, f"{table} is not published yet")
    names = ctx.has("raw.products")
    join = " left join raw.products p on p.product_id = e.unique_id" if names else ""
    name = "p.product_name, " if names else ""
    ids = [e.name for e in found.of("product")]
    where = _where([_in("e.unique_id", ids)] if ids else [])
    counts = ctx.run(f"select reason_code, count(*) as series from {table} e{where} group by 1 order by 1")
    frame = ctx.run(f"select e.unique_id, {name}e.reason_code, e.reason, e.n_periods, e.last_ds from {table} e"
                    f"{join}{where} order by e.reason_code, e.unique_id")
    if frame.empty:
        text = (f"{_names(found)} is forecast: it is not among the excluded series." if ids
                else "Every series is forecast: none is excluded.")
        return Answer(question, text, frame, [], ENGINE)
    total = int(counts["series"].sum())
    text = (f"{total} series are not forecast: " + ", ".join(f"{r.reason_code} {r.series}" for r in counts.itertuples())
            + ". For example: " + frame["reason"].iloc[0] + _shown(frame, total))
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(counts, "reason_code", "series", "series not forecast, by reason"))


def _shown(frame: pd.DataFrame, total: int) -> str:
    """Said when the row limit cut the table short of everything the text counts."""
    return f" (the table shows the first {len(frame):,} of {total:,})" if len(frame) < total else ""


def _widest(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "forecasting.forecasts"
    columns = ctx.columns(table)
    level = max((int(c[3:]) for c in columns if c.startswith("hi_")), default=None)
    if level is None:
        return cannot(question, "the forecasts have no intervals")
    n = parsed.n or 10
    label = "product_name" if "product_name" in ctx.columns(SALES) else "unique_id"
    order = "relative_width" if any(w in parsed.text for w in ("relative", "relatif", "percent")) else "mean_width"
    ids = [e.name for e in found.of("product")]
    where = _where([_in("f.unique_id", ids)] if ids else [])
    frame = ctx.run(
        f"with names as (select unique_id, any_value({label}) as name from {SALES} group by unique_id) "
        f"select f.unique_id, n.name, round(avg(f.hi_{level} - f.lo_{level}), 2) as mean_width, "
        f"round(max(f.hi_{level} - f.lo_{level}), 2) as max_width, round(avg(f.y_hat), 2) as mean_forecast, "
        f"round(avg(f.hi_{level} - f.lo_{level}) / nullif(avg(f.y_hat), 0), 2) as relative_width "
        f"from {table} f left join names n on n.unique_id = f.unique_id{where} group by f.unique_id, n.name "
        f"order by {order} desc nulls last, f.unique_id limit {n}")
    top = frame.iloc[0]
    text = (f"The {len(frame)} series with the widest {level}% intervals ({order.replace('_', ' ')}): the widest is "
            f"{top['name']} ({top['unique_id']}), {top['mean_width']:,.1f} units wide on average around a forecast of "
            f"{top['mean_forecast']:,.1f}.")
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(frame.assign(name=frame["name"].fillna(frame["unique_id"])), "name", order,
                                   f"{level}% interval width ({order.replace('_', ' ')})"))


def _count(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    dimension = next((d for d in parsed.dimensions), None) or next(
        (d for d, word in (("brand", "marque"), ("brand", "brand"), ("category", "categor"), ("customer", "client"),
                           ("customer", "customer"), ("channel", "canal"), ("channel", "channel"),
                           ("region", "region"), ("model", "model")) if word in parsed.text), "product")
    if dimension == "model":
        frame = ctx.run("select count(distinct model) as models from forecasting.series_evaluation")
        return Answer(question, f"{frame.iloc[0, 0]} models were backtested.", frame, [], ENGINE)
    try:
        expression, _, label = _group(dimension, ctx)
        conditions = _filters(found, ctx)
    except LookupError as error:
        return cannot(question, str(error))
    frame = ctx.run(f"select count(distinct {expression}) as {label}s, count(distinct unique_id) as series, "
                    f"count(distinct unique_id) filter (where origin = 'Predict') as forecast_series "
                    f"from {SALES}{_where(conditions)}")
    row = frame.iloc[0]
    scope = f" of {_names(found)}" if found.entities else ""
    return Answer(question, f"{row.iloc[0]} {label}s{scope}; {row['series']} series, {row['forecast_series']} of "
                  "them forecast.", frame, [], ENGINE)


def _stats(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    try:
        conditions = _filters(found, ctx)
    except LookupError as error:
        return cannot(question, str(error))
    if parsed.year:
        conditions.append(f"year(ds) = {parsed.year}")
    frame = ctx.run(f"select origin, count(*) as rows, count(distinct unique_id) as series, min(ds) as first_ds, "
                    "max(ds) as last_ds, round(sum(sales), 2) as total, round(avg(sales), 2) as mean, "
                    "round(median(sales), 2) as median, round(min(sales), 2) as min, round(max(sales), 2) as max, "
                    f"round(stddev(sales), 2) as std from {SALES}{_where(conditions)} group by origin order by origin "
                    "desc")
    scope = f" of {_names(found)}" if found.entities else ""
    lines = [f"  - {r.origin}: {r.rows} rows over {r.series} series, {_day(r.first_ds)} to {_day(r.last_ds)}, mean "
             f"{r.mean:,.2f}, median {r.median:,.2f}, min {r.min:,.2f}, max {r.max:,.2f}" for r in frame.itertuples()]
    return Answer(question, f"Statistics of weekly units{scope} by origin:\n" + "\n".join(lines), frame, [], ENGINE)


_HANDLERS = {
    "excluded": _excluded, "widest": _widest, "past_accuracy": _past_accuracy, "model_wins": _model_wins,
    "model_accuracy": _model_accuracy, "yoy": _yoy, "top": _top, "count": _count, "stats": _stats,
    "totals": _totals,
}
