"""Offline answers about sales: series with their forecast, totals and shares, top and bottom, this year
against last, counts and statistics."""

from __future__ import annotations

import re

from mlops_assets.ask import charts
from mlops_assets.ask.context import Answer, Context
from mlops_assets.ask.guard import MAX_ROWS
from mlops_assets.ask.intents import GROWTH, Parsed, mentioned
from mlops_assets.ask.model_answers import model_accuracy
from mlops_assets.ask.names import Found
from mlops_assets.ask.phrasing import (
    ENGINE,
    SALES,
    cannot,
    day,
    in_list,
    name_filters,
    names_of,
    plural,
    upper_first,
    where_clause,
)

MAX_PANELS = 6  # series drawn one panel each; more are summed per product, then per brand
_PERIOD_SQL = {"week": "date_trunc('week', ds)", "month": "date_trunc('month', ds)",
               "quarter": "date_trunc('quarter', ds)", "year": "year(ds)"}


def _measure(parsed: Parsed) -> tuple[list[str], str]:
    """The origin condition and how the text names it: actuals by default, the forecast when asked."""
    if parsed.origin:
        return [], "actuals and forecast"
    if parsed.forecast and not parsed.actual or parsed.forecast and "prediction" in parsed.text:
        return ["origin = 'Predict'"], "forecast units"
    return ["origin = 'Train'"], "actual units"


def series(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    columns = ctx.columns(SALES)
    bounds = [c for c in columns if c.startswith(("lo_", "hi_"))]
    try:
        conditions = name_filters(found, ctx)
    except LookupError as error:
        return cannot(question, str(error))
    # Each name is drawn ("Etorki 200g and Babybel"): any of them, not a product that is both.
    where = where_clause([" or ".join(f"({c})" for c in conditions) if len(conditions) > 1 else conditions[0]]
                         if conditions else [])
    label = "product_name" if "product_name" in columns else "unique_id"
    ids = ctx.run(f"select unique_id, any_value({label}) as label from {SALES}{where} group by unique_id "
                  "order by unique_id")
    if ids.empty:
        return Answer(question, f"{names_of(found)} has no actuals or forecast in {SALES}.", ids, [], ENGINE)
    if len(ids) <= MAX_PANELS:
        picked = ", ".join(c for c in bounds)
        rows = ctx.run(f"select unique_id, {label} as label, ds, origin, sales, {picked}, model, model_version "
                       f"from {SALES}{where} order by unique_id, ds, origin", max_rows=100_000)
        rows["label"] = rows["label"].fillna(rows["unique_id"]) + (
            " (" + rows["unique_id"] + ")" if ids["label"].duplicated().any() else "")
    else:
        kinds = {e.kind for e in found.entities}
        group = (next(iter(kinds)) if len(kinds) == 1 and kinds <= {"brand", "category"}
                 and len(found.entities) <= MAX_PANELS and next(iter(kinds)) in columns else
                 label if ids["label"].nunique() <= MAX_PANELS else None)
        key = group or "'total'"
        rows = ctx.run(f"select {key} as label, ds, origin, sum(sales) as sales from {SALES}{where} "
                       "group by all order by label, ds, origin", max_rows=100_000)
        if group is None:
            rows["label"] = names_of(found) or "total"
    png = charts.series_chart(rows)
    predict = rows[rows["origin"] == "Predict"]
    parts = []
    for name, part in rows.groupby("label", sort=False):
        ahead = part[part["origin"] == "Predict"]
        last = part[part["origin"] == "Train"]["ds"].max()
        model = ahead["model"].dropna().iloc[0] if "model" in ahead and ahead["model"].notna().any() else None
        parts.append(f"{name}: actuals to {day(last)}" + (
            f", forecast {ahead['sales'].sum():,.0f} units over the next {len(ahead)} periods"
            + (f" ({model}, version {ahead['model_version'].iloc[0]})" if model else "") if len(ahead) else
            ", no forecast (see: which series are not forecast and why)"))
    text = f"Actuals and forecast of {len(ids)} series" + (
        f" ({names_of(found)})" if found.entities else "") + ":\n" + "\n".join(f"  - {p}" for p in parts)
    shown = predict if len(predict) else rows
    return Answer(question, text, shown.reset_index(drop=True), [], ENGINE, png)


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
    conditions = [in_list(sql, [e.name for e in found.of(kind)]) for kind, sql in _ORDER_FILTERS if found.of(kind)]
    if parsed.year:
        conditions.append(f"year(o.order_date) = {parsed.year}")
    order = "asc" if parsed.bottom and top else "desc"
    frame = ctx.run(f"select c.{column} as {dimension}, round(sum(o.quantity), 2) as units, "
                    "round(100 * sum(o.quantity) / sum(sum(o.quantity)) over (), 2) as share_pct "
                    "from raw.sales_orders o join raw.customers c on c.customer_id = o.customer_id "
                    f"join raw.products p on p.product_id = o.product_id{where_clause(conditions)} group by all "
                    f"order by units {order}, {dimension}" + (f" limit {top}" if top else ""))
    if frame.empty:
        return Answer(question, "No order lines match.", frame, [], ENGINE)
    scope = f" of {names_of(found)}" if found.entities else ""
    title = f"units ordered{scope}" + (f" in {parsed.year}" if parsed.year else "") + f" by {dimension}"
    first = frame.iloc[0]
    text = upper_first(f"{title} (from the order lines: the forecasts are per product): {len(frame)} groups, "
            f"{frame['units'].sum():,.0f} units; {'the first' if top else 'the largest'} is {first[dimension]} with "
            f"{first['units']:,.0f} ({first['share_pct']:.1f}%).")
    return Answer(question, text, frame, [], ENGINE, charts.bar_chart(frame, dimension, "units", title))


def _filled(ctx: Context, column: str) -> bool:
    """Whether any row has a value in the column (series files may carry no brand or category)."""
    return bool(ctx.run(f"select count({column}) > 0 as filled from {SALES}", record=False)["filled"].iloc[0])


def totals(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    dims = [d for d in parsed.dimensions if d != "model"]
    if "model" in parsed.dimensions and not dims:
        return model_accuracy(question, parsed, found, ctx)
    named_groups = [e for e in found.entities if e.kind in ("brand", "category")
                    or e.kind in ("channel", "region") and _by_customer(e.kind, ctx)]
    if parsed.share and not dims and not parsed.period and named_groups:
        # "What share comes from Hard cheese?": the share among its peers, not of itself (100%).
        dims = [named_groups[0].kind]
        found = Found([e for e in found.entities if e.kind != dims[0]], found.ambiguous)
    if len(dims) == 1 and not parsed.period and _by_customer(dims[0], ctx):
        result = _orders(question, parsed, found, ctx, dims[0], None)
        mine = [e for e in named_groups if e.kind == dims[0]]
        if mine and dims[0] in result.table:
            share = result.table[result.table[dims[0]] == mine[0].name]["share_pct"]
            result.text += f" {mine[0].label}: {share.iloc[0]:.1f}% of the units." if len(share) else ""
        return result
    try:
        groups = [_group(d, ctx) for d in dims]
        conditions = name_filters(found, ctx)
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
    if labels and (parsed.share or not parsed.period):
        partition = [lab for lab in labels if lab == "origin" and labels[0] != "origin"]
        over = f"partition by {', '.join(partition)}" if partition else ""
        share = f", round(100 * sum(sales) / sum(sum(sales)) over ({over}), 2) as share_pct"
    order = ", ".join(labels) if parsed.period else "units desc"
    frame = ctx.run(f"select {select}{share} from {SALES}{where_clause([*conditions, *origin])} "
                    f"group by all order by {order}")
    if frame.empty:
        return Answer(question, "No rows match.", frame, [], ENGINE)
    scope = f" of {names_of(found)}" if found.entities else ""
    when = f" in {parsed.year}" if parsed.year else ""
    title = f"{measure}{scope}{when} by {', '.join(labels)}"
    if named_groups and dims and dims[0] == named_groups[0].kind:
        mine = frame[frame[dims[0]] == named_groups[0].name]
        if len(mine):
            title += f" ({named_groups[0].label}: {mine['share_pct'].iloc[0]:.1f}%)"
    if not labels:
        total = frame["units"].iloc[0]
        return Answer(question, upper_first(f"{measure}{scope}{when}: {total:,.0f} units in all."), frame, [], ENGINE)
    if parsed.period:
        hue = next((lab for lab in labels if lab != parsed.period), None)
        png = charts.line_chart(frame, parsed.period, "units", hue, title)
        text = upper_first(f"{title}: {len(frame)} rows" + (f" (the first {len(frame)}: the row limit)" if len(frame)
                      == MAX_ROWS else f", {frame['units'].sum():,.0f} units in all") + ".")
    else:
        label = labels[0]
        bars = frame if len(labels) == 1 else frame.assign(**{label: frame[labels].astype(str).agg(" / ".join, axis=1)})
        png = charts.bar_chart(bars, label, "share_pct" if parsed.share else "units", title)
        top = frame.iloc[0]
        counted = (f"the {len(frame)} largest groups (the row limit)" if len(frame) == MAX_ROWS else
                   f"{len(frame)} groups, {frame['units'].sum():,.0f} units in all")
        text = upper_first(f"{title}: {counted}; the largest "
                f"is {' / '.join(str(top[lab]) for lab in labels)} with {top['units']:,.0f} ({top['share_pct']:.1f}%).")
    return Answer(question, text, frame, [], ENGINE, png)


def top(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    dimension = next((d for d in parsed.dimensions or mentioned(parsed.text) if d not in ("origin", "model")),
                     "product")
    if "model" in parsed.dimensions and not parsed.actual and not parsed.forecast:
        return model_accuracy(question, parsed, found, ctx)
    n = parsed.n or 5
    if _by_customer(dimension, ctx):
        return _orders(question, parsed, found, ctx, dimension, n)
    try:
        expression, _, label = _group(dimension, ctx)
        conditions = name_filters(found, ctx)
    except LookupError as error:
        return cannot(question, str(error))
    origin, measure = _measure(parsed)
    origin = origin or ["origin = 'Train'"]
    if parsed.year:
        conditions.append(f"year(ds) = {parsed.year}")
    direction = "asc" if parsed.bottom else "desc"
    frame = ctx.run(f"select {expression} as {label}, round(sum(sales), 2) as units, "
                    f"round(100 * sum(sales) / sum(sum(sales)) over (), 2) as share_pct from {SALES}"
                    f"{where_clause([*conditions, *origin])} group by all "
                    f"order by units {direction}, {label} limit {n}")
    which = "bottom" if parsed.bottom else "top"
    title = f"{which} {n} {plural(dimension)} by {measure}" + (f" in {parsed.year}" if parsed.year else "")
    lines = "\n".join(f"  {i + 1}. {r[label]}: {r['units']:,.0f} ({r['share_pct']:.1f}%)"
                      for i, r in frame.iterrows())
    return Answer(question, upper_first(f"{title}:\n{lines}"), frame, [], ENGINE,
                  charts.bar_chart(frame, label, "units", title) if len(frame) else None)


def yoy(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    dims = [d for d in parsed.dimensions if d not in ("origin", "model")]
    growth = GROWTH.search(parsed.text)
    if growth and not dims:  # "which products grow fastest": compared one by one
        dims = [d for d in mentioned(parsed.text) if d not in ("origin", "model")] or ["product"]
    try:
        groups = [_group(d, ctx) for d in dims[:1]]
        conditions = name_filters(found, ctx, alias="s")
    except LookupError as error:
        return cannot(question, str(error))
    keys = "".join(f"{expression} as {label}, " for expression, _, label in groups)
    train = "s.origin = 'Train'"
    by = " group by all order by this_year desc" if groups else ""
    falling = None
    if growth and groups:
        falling = re.search(r"declin|decreas|fall|drop|baiss|recul|chute|shrink", parsed.text)
        by = (f" group by all having last_year > 0 order by change_pct {'asc' if falling else 'desc'}, "
              f"{groups[0][2]} limit {parsed.n or 10}")
    frame = ctx.run(
        f"with bounds as (select max(ds) as last_ds, date_trunc('year', max(ds)) as first_ds from {SALES} "
        f"where origin = 'Train') select {keys}"
        "round(sum(s.sales) filter (where s.ds between b.first_ds and b.last_ds), 2) as this_year, "
        "round(sum(s.sales) filter (where s.ds between b.first_ds - interval 1 year and b.last_ds - interval 1 year)"
        ", 2) as last_year, round(100 * (this_year / nullif(last_year, 0) - 1), 2) as change_pct, "
        "any_value(b.first_ds) as since, any_value(b.last_ds) as until "
        f"from {SALES} s, bounds b{where_clause([*conditions, train])}{by}")
    if frame.empty or frame["this_year"].isna().all():
        return Answer(question, "No actuals match.", frame, [], ENGINE)
    since, until = day(frame["since"].iloc[0]), day(frame["until"].iloc[0])
    frame = frame.drop(columns=["since", "until"])
    scope = f" of {names_of(found)}" if found.entities else ""
    total_now, total_then = frame["this_year"].sum(), frame["last_year"].sum()
    change = f"{100 * (total_now / total_then - 1):+.1f}%" if total_then else "no sales last year"
    text = (f"Actual units{scope} from {since} to {until}: {total_now:,.0f}, against {total_then:,.0f} over the same "
            f"weeks a year earlier ({change}).")
    if growth and groups:
        label = groups[0][2]
        lines = "\n".join(f"  {i + 1}. {r[label]}: {r['change_pct']:+.1f}% ({r['last_year']:,.0f} -> "
                          f"{r['this_year']:,.0f})" for i, r in frame.iterrows())
        text = (f"{plural(label).capitalize()}{scope} by change in actual units from {since} to {until} against the "
                f"same weeks a year earlier ({'falling most' if falling else 'growing most'} first):\n{lines}")
    png = None
    if groups:
        label = groups[0][2]
        png = charts.bar_chart(frame, label, "change_pct", f"change in % on last year by {label}")
    return Answer(question, text, frame, [], ENGINE, png)


def count(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    dimension = next((d for d in parsed.dimensions), None) or next(
        (d for d, word in (("brand", "marque"), ("brand", "brand"), ("category", "categor"), ("customer", "client"),
                           ("customer", "customer"), ("channel", "canal"), ("channel", "channel"),
                           ("region", "region"), ("model", "model")) if word in parsed.text), "product")
    if dimension == "model":
        frame = ctx.run("select count(distinct model) as models from forecasting.series_evaluation")
        return Answer(question, f"{frame.iloc[0, 0]} models were backtested.", frame, [], ENGINE)
    try:
        expression, _, label = _group(dimension, ctx)
        conditions = name_filters(found, ctx)
    except LookupError as error:
        return cannot(question, str(error))
    frame = ctx.run(f"select count(distinct {expression}) as {plural(label)}, count(distinct unique_id) as series, "
                    f"count(distinct unique_id) filter (where origin = 'Predict') as forecast_series "
                    f"from {SALES}{where_clause(conditions)}")
    row = frame.iloc[0]
    scope = f" of {names_of(found)}" if found.entities else ""
    return Answer(question, f"{row.iloc[0]} {plural(label)}{scope}; {row['series']} series, "
                  f"{row['forecast_series']} of them forecast.", frame, [], ENGINE)


def stats(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    try:
        conditions = name_filters(found, ctx)
    except LookupError as error:
        return cannot(question, str(error))
    if parsed.year:
        conditions.append(f"year(ds) = {parsed.year}")
    frame = ctx.run(f"select origin, count(*) as rows, count(distinct unique_id) as series, min(ds) as first_ds, "
                    "max(ds) as last_ds, round(sum(sales), 2) as total, round(avg(sales), 2) as mean, "
                    "round(median(sales), 2) as median, round(min(sales), 2) as min, round(max(sales), 2) as max, "
                    f"round(stddev(sales), 2) as std from {SALES}{where_clause(conditions)} group by origin "
                    "order by origin desc")
    scope = f" of {names_of(found)}" if found.entities else ""
    lines = [f"  - {r.origin}: {r.rows} rows over {r.series} series, {day(r.first_ds)} to {day(r.last_ds)}, mean "
             f"{r.mean:,.2f}, median {r.median:,.2f}, min {r.min:,.2f}, max {r.max:,.2f}" for r in frame.itertuples()]
    return Answer(question, f"Statistics of weekly units{scope} by origin:\n" + "\n".join(lines), frame, [], ENGINE)


def listing(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    """The products or customers (master data), with what the question names as a filter."""
    kind = next((d for d in mentioned(parsed.text) if d in ("product", "customer", "brand", "category", "channel",
                                                              "region")), "product")
    if kind in ("customer", "channel", "region"):
        table, columns, key = "raw.customers", ["customer_id", "customer_name", "channel", "region"], "customer_id"
    else:
        table, columns, key = "raw.products", ["product_id", "product_name", "brand", "category"], "product_id"
    if not ctx.has(table) or not set(columns) <= set(ctx.columns(table)):
        return cannot(question, f"{table} is not published")
    column = {"brand": "brand", "category": "category", "channel": "channel", "region": "region"}.get(kind)
    conditions = [in_list(c, [e.name for e in found.of(k)]) for k, c in
                  (("product", "product_id"), ("brand", "brand"), ("category", "category"),
                   ("customer", "customer_id"), ("channel", "channel"), ("region", "region"))
                  if found.of(k) and c in columns]
    if column:
        frame = ctx.run(f"select {column}, count(*) as {plural(key.split('_')[0])} from {table}"
                        f"{where_clause(conditions)} group by 1 order by 1")
    else:
        frame = ctx.run(f"select {', '.join(columns)} from {table}{where_clause(conditions)} order by {key}")
    scope = f" of {names_of(found)}" if found.entities else ""
    shown = ", ".join(str(v) for v in frame.iloc[:12, 1 if not column else 0])
    more = f" and {len(frame) - 12} more" if len(frame) > 12 else ""
    return Answer(question, f"{len(frame)} {plural(kind)}{scope}: {shown}{more}.", frame, [], ENGINE)
