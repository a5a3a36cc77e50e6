"""The offline engine: a question's intent and names (intents.py, names.py) turned into guarded SQL and an answer.

Every query goes through the guard and runs on the read-only snapshot connection (``Context.run``). A question
that fits no intent, or needs a table or column the data does not have, is answered "I can't answer that
from these tables" with examples, never with a guess.
"""

from __future__ import annotations

import pandas as pd

from mlops_assets.ask import model_answers, sales_answers
from mlops_assets.ask.context import Answer, Context
from mlops_assets.ask.intents import COMPARE, OUT_OF_SCOPE, mentioned_period, parse
from mlops_assets.ask.names import Found, find_names
from mlops_assets.ask.phrasing import ENGINE, cannot


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
        handler = sales_answers.totals
    asks_sales = parsed.chart or parsed.actual or parsed.forecast or parsed.sales or COMPARE.search(parsed.text)
    if handler is None and found.entities and asks_sales:
        handler = sales_answers.series
    if handler is None and asks_sales and not found.ambiguous:
        # Sales or the forecast, of everything: over the periods the question names, else by week on a chart.
        parsed.period = mentioned_period(parsed.text) or ("week" if parsed.chart else None)
        handler = sales_answers.totals
    if handler is None:
        return cannot(question)
    # "plot Etorki's sales" reads as totals (it says sales of a name), but one series' picture was asked for.
    if handler is sales_answers.totals and found.entities and parsed.chart and not (parsed.dimensions or parsed.period):
        handler = sales_answers.series
    try:
        result = handler(question, parsed, found, ctx)
    except LookupError as error:  # a name or grouping the tables do not split the series by
        return cannot(question, str(error))
    result.sql = list(ctx.sql)
    return result


def _ambiguous(question: str, found: Found) -> Answer:
    words, candidates = found.ambiguous[0]
    table = pd.DataFrame([{"kind": e.kind, "name": e.label, "id": e.name} for e in candidates])
    names = ", ".join(f'"{e.label}"' for e in candidates)
    return Answer(question, f'"{words}" could mean several things: {names}. Ask again with one of them.',
                  table, [], ENGINE)


_HANDLERS = {
    "excluded": model_answers.excluded, "widest": model_answers.widest, "past_accuracy": model_answers.past_accuracy,
    "model_wins": model_answers.model_wins, "model_accuracy": model_answers.model_accuracy,
    "yoy": sales_answers.yoy, "top": sales_answers.top, "count": sales_answers.count, "stats": sales_answers.stats,
    "totals": sales_answers.totals, "listing": sales_answers.listing,
}
