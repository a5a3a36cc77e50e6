"""What every offline answer shares: its wording helpers, SQL literals and conditions, the refusal."""

from __future__ import annotations

import pandas as pd

from mlops_assets.ask.context import Answer, Context
from mlops_assets.ask.names import Found

ENGINE = "offline"
SALES = "serving.sales_overall"
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


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


def lit(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def in_list(column: str, values: list[str]) -> str:
    return f"{column} in ({', '.join(lit(v) for v in values)})"


def cannot(question: str, why: str = "") -> Answer:
    shown = "\n".join(f"  - {e}" for e in EXAMPLES)
    reason = f" ({why})" if why else ""
    return Answer(question, f"I can't answer that from these tables{reason}. Questions I can answer, e.g.:\n{shown}",
                  pd.DataFrame(), [], ENGINE)


def where_clause(conditions: list[str]) -> str:
    return f" where {' and '.join(conditions)}" if conditions else ""


def names_of(found: Found) -> str:
    return ", ".join(e.label for e in found.entities)


def day(value) -> str:
    return pd.Timestamp(value).date().isoformat() if pd.notna(value) else "never"


def shown(frame: pd.DataFrame, total: int) -> str:
    """Said when the row limit cut the table short of everything the text counts."""
    return f" (the table shows the first {len(frame):,} of {total:,})" if len(frame) < total else ""


def name_filters(found: Found, ctx: Context, table: str = SALES, alias: str = "") -> list[str]:
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
        conditions.append(in_list(f"{prefix}{column}", names))
    return conditions


def series_named(found: Found, ctx: Context, column: str) -> list[str]:
    """A condition keeping the series the names cover (a product, a brand, a category...), [] when none is named.

    Raises LookupError when a name's kind does not split the series (a channel at the product grain).
    """
    if not found.entities:
        return []
    conditions = " or ".join(f"({c})" for c in name_filters(found, ctx))
    return [f"{column} in (select distinct unique_id from {SALES} where {conditions})"]
