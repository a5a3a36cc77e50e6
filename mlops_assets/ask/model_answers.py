"""Offline answers about the models: which wins, how accurate each is in the backtest and on new actuals,
which series are not forecast and why, the widest intervals."""

from __future__ import annotations

from mlops_assets.ask import charts
from mlops_assets.ask.context import Answer, Context
from mlops_assets.ask.intents import Parsed
from mlops_assets.ask.names import Found
from mlops_assets.ask.phrasing import ENGINE, SALES, cannot, day, names_of, series_named, shown, where_clause


def model_wins(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "forecasting.series_champions"
    if not ctx.has(table):
        return cannot(question, f"{table} is not published yet: materialize the forecasts")
    named = series_named(found, ctx, "unique_id")
    if found.entities and all(e.kind == "product" for e in found.entities):
        frame = ctx.run(f"select unique_id, model, round(smape, 2) as smape, runner_up, round(runner_up_smape, 2) "
                        f"as runner_up_smape, round(seasonal_naive_smape, 2) as seasonal_naive_smape from {table}"
                        f"{where_clause(named)} order by unique_id")
        lines = [f"  - {r.unique_id}: {r.model} (SMAPE {r.smape}), runner-up {r.runner_up} ({r.runner_up_smape})"
                 for r in frame.itertuples()]
        return Answer(question, "Champion of each series named:\n" + "\n".join(lines) if lines else
                      "That series has no champion: it is not forecast.", frame, [], ENGINE)
    frame = ctx.run(f"select model, count(*) as series, round(100.0 * count(*) / sum(count(*)) over (), 2) as "
                    f"share_pct, round(avg(smape), 2) as mean_smape from {table}{where_clause(named)} group by model "
                    "order by series desc, model")
    if frame.empty:
        return Answer(question, f"No series of {names_of(found)} has a champion: none is forecast.", frame, [], ENGINE)
    top = frame.iloc[0]
    scope = f" on {names_of(found)}" if found.entities else ""
    text = (f"{top['model']} wins most often{scope}: champion of {top['series']} of {frame['series'].sum()} series "
            f"({top['share_pct']:.1f}%), mean backtest SMAPE {top['mean_smape']}. "
            + "; ".join(f"{r.model} {r.series}" for r in frame.iloc[1:].itertuples()))
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(frame, "model", "series", "series won by each model (champions)"))


def model_accuracy(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "forecasting.series_evaluation"
    if not ctx.has(table):
        return cannot(question, f"{table} is not published yet: materialize the backtest")
    where = where_clause(series_named(found, ctx, "unique_id"))
    frame = ctx.run(f"select model, count(*) as series, round(avg(smape), 2) as mean_smape, "
                    f"round(median(smape), 2) as median_smape, round(avg(mase), 3) as mean_mase, "
                    f"round(avg(wape), 2) as mean_wape from {table}{where} group by model "
                    "order by mean_smape nulls last, model")
    if frame.empty:
        return Answer(question, "No backtest scores match.", frame, [], ENGINE)
    best = frame.iloc[0]
    scope = f" on {names_of(found)}" if found.entities else f" over {int(frame['series'].max())} series"
    text = (f"Backtest accuracy of each model{scope} (SMAPE 0-200, lower is better): best {best['model']} with mean "
            f"SMAPE {best['mean_smape']}, worst {frame.iloc[-1]['model']} with {frame.iloc[-1]['mean_smape']}.")
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(frame, "model", "mean_smape", "mean backtest SMAPE by model (lower is better)"))


def past_accuracy(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "monitoring.forecast_accuracy"
    if not ctx.has(table):
        return cannot(question, f"{table} is not published yet")
    columns = ctx.columns(table)
    where = where_clause(series_named(found, ctx, "unique_id"))
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
    text = (f"{total} past forecasts have met their actuals, from {day(frame['first_ds'].min())} to "
            f"{day(frame['last_ds'].max())}: mean SMAPE {mean:.1f}" + (
                f", {frame[f'in_{level}_pct'].mul(frame['forecasts']).sum() / total:.1f}% inside the {level}% "
                "interval" if level else "") + f" (by {by.replace('_', ' ')} in the table).")
    frame[by] = frame[by].astype(str)
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(frame, by, "mean_smape", f"SMAPE of past forecasts by {by}"))


def excluded(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "gold.series_excluded"
    if not ctx.has(table):
        return cannot(question, f"{table} is not published yet")
    names = ctx.has("raw.products")
    join = " left join raw.products p on p.product_id = e.unique_id" if names else ""
    name = "p.product_name, " if names else ""
    where = where_clause(series_named(found, ctx, "e.unique_id"))
    counts = ctx.run(f"select reason_code, count(*) as series from {table} e{where} group by 1 order by 1")
    frame = ctx.run(f"select e.unique_id, {name}e.reason_code, e.reason, e.n_periods, e.last_ds from {table} e"
                    f"{join}{where} order by e.reason_code, e.unique_id")
    if frame.empty:
        text = (f"{names_of(found)} is forecast: it is not among the excluded series." if found.entities
                else "Every series is forecast: none is excluded.")
        return Answer(question, text, frame, [], ENGINE)
    total = int(counts["series"].sum())
    text = (f"{total} series are not forecast: " + ", ".join(f"{r.reason_code} {r.series}" for r in counts.itertuples())
            + ". For example: " + frame["reason"].iloc[0] + shown(frame, total))
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(counts, "reason_code", "series", "series not forecast, by reason"))


def widest(question: str, parsed: Parsed, found: Found, ctx: Context) -> Answer:
    table = "forecasting.forecasts"
    columns = ctx.columns(table)
    level = max((int(c[3:]) for c in columns if c.startswith("hi_")), default=None)
    if level is None:
        return cannot(question, "the forecasts have no intervals")
    n = parsed.n or 10
    label = "product_name" if "product_name" in ctx.columns(SALES) else "unique_id"
    order = "relative_width" if any(w in parsed.text for w in ("relative", "relatif", "percent")) else "mean_width"
    where = where_clause(series_named(found, ctx, "f.unique_id"))
    frame = ctx.run(
        f"with names as (select unique_id, any_value({label}) as name from {SALES} group by unique_id) "
        f"select f.unique_id, n.name, round(avg(f.hi_{level} - f.lo_{level}), 2) as mean_width, "
        f"round(max(f.hi_{level} - f.lo_{level}), 2) as max_width, round(avg(f.y_hat), 2) as mean_forecast, "
        f"round(avg(f.hi_{level} - f.lo_{level}) / nullif(avg(f.y_hat), 0), 2) as relative_width "
        f"from {table} f left join names n on n.unique_id = f.unique_id{where} group by f.unique_id, n.name "
        f"order by {order} desc nulls last, f.unique_id limit {n}")
    if frame.empty:
        return Answer(question, f"No forecast of {names_of(found)} has intervals.", frame, [], ENGINE)
    top = frame.iloc[0]
    text = (f"The {len(frame)} series with the widest {level}% intervals ({order.replace('_', ' ')}): the widest is "
            f"{top['name']} ({top['unique_id']}), {top['mean_width']:,.1f} units wide on average around a forecast of "
            f"{top['mean_forecast']:,.1f}.")
    return Answer(question, text, frame, [], ENGINE,
                  charts.bar_chart(frame.assign(name=frame["name"].fillna(frame["unique_id"])), "name", order,
                                   f"{level}% interval width ({order.replace('_', ' ')})"))
