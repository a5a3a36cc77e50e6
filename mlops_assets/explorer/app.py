"""The forecast explorer: a page on 127.0.0.1 to pick a series, see its forecast, and ask questions.

    python -m mlops_assets.explorer.app [--port 8050]        (make explore)

Dash with Plotly, serving its own bundled JavaScript (nothing is fetched from the internet). Every read is a
guarded query on the read-only snapshot connection, opened per request: the page follows new runs.
"""

from __future__ import annotations

import argparse
import base64
import logging

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from mlops_assets.ask.service import ask
from mlops_assets.explorer import data
from mlops_assets.settings import DataPaths, Settings, load_settings

ACTUAL = "#1f4e79"
FORECAST = "#d9534f"
BAND = {80: "rgba(217, 83, 79, 0.28)", 95: "rgba(217, 83, 79, 0.14)"}
_TABLE_STYLE = {"borderCollapse": "collapse", "fontSize": "13px", "margin": "4px 0 12px"}
_CELL = {"border": "1px solid #ddd", "padding": "2px 8px"}


def table(frame: pd.DataFrame, rows: int = 20, **attributes) -> html.Table:
    if frame is None or frame.empty:
        return html.Table([], **attributes)
    shown = frame.head(rows).astype(object).where(frame.head(rows).notna(), "")
    head = html.Tr([html.Th(str(c), style=_CELL) for c in shown.columns])
    body = [html.Tr([html.Td(str(v), style=_CELL) for v in row]) for row in shown.itertuples(index=False)]
    return html.Table([html.Thead(head), html.Tbody(body)], style=_TABLE_STYLE, **attributes)


def series_figure(rows: pd.DataFrame, title: str) -> go.Figure:
    figure = go.Figure()
    actual, forecast = rows[rows["origin"] == "Train"], rows[rows["origin"] == "Predict"]
    for level in sorted({int(c[3:]) for c in rows.columns if c.startswith("hi_")}, reverse=True):
        x = list(forecast["ds"]) + list(forecast["ds"])[::-1]
        y = list(forecast[f"hi_{level}"]) + list(forecast[f"lo_{level}"])[::-1]
        figure.add_trace(go.Scatter(x=x, y=y, fill="toself", fillcolor=BAND.get(level, "rgba(217,83,79,0.1)"),
                                    line={"width": 0}, name=f"{level}% interval", hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=actual["ds"], y=actual["sales"], mode="lines", name="actual",
                                line={"color": ACTUAL, "width": 1.5}))
    figure.add_trace(go.Scatter(x=forecast["ds"], y=forecast["sales"], mode="lines+markers", name="forecast",
                                line={"color": FORECAST, "width": 2}, marker={"size": 4}))
    figure.update_layout(title=title, margin={"l": 40, "r": 10, "t": 40, "b": 30}, height=380,
                         legend={"orientation": "h"}, template="plotly_white")
    return figure


def build_app(paths: DataPaths, settings: Settings) -> dash.Dash:
    app = dash.Dash(__name__, title="Forecast explorer", serve_locally=True, update_title=None)
    tracking_uri = settings.mlflow_tracking_uri or paths.mlflow_tracking_uri
    with data.reading(paths) as ctx:
        options = data.series_options(ctx)
    app.layout = html.Div(style={"fontFamily": "sans-serif", "maxWidth": "1100px", "margin": "auto"}, children=[
        html.H2("Forecast explorer"),
        dcc.Dropdown(id="series", options=options, placeholder="Search a series by name or id", searchable=True,
                     clearable=False),
        dcc.Graph(id="series-chart", config={"displaylogo": False}),
        html.Div(id="series-facts"),
        html.H3("Totals"),
        dcc.RadioItems(id="totals-by", options=[{"label": " by brand", "value": "brand"},
                                                {"label": " by category", "value": "category"}],
                       value="brand", inline=True),
        dcc.Graph(id="totals-chart", config={"displaylogo": False}),
        html.H3("Ask a question"),
        html.Div([dcc.Input(id="question", type="text", debounce=False, style={"width": "80%"},
                            placeholder="e.g. show sales and the forecast of Etorki on a line plot"),
                  html.Button("Ask", id="ask", n_clicks=0)]),
        dcc.Loading(html.Div(id="answer")),
    ])

    @app.callback(Output("series-chart", "figure"), Output("series-facts", "children"), Input("series", "value"))
    def show_series(unique_id):
        if not unique_id:
            return go.Figure(layout={"height": 380, "template": "plotly_white"}), html.P("Pick a series above.")
        with data.reading(paths) as ctx:
            rows = data.series_rows(ctx, unique_id)
            facts = data.series_facts(ctx, unique_id)
        label = next((o["label"] for o in options if o["value"] == unique_id), unique_id)
        predict = rows[rows["origin"] == "Predict"]
        version = predict["model_version"].dropna().iloc[0] if predict["model_version"].notna().any() else None
        trained = data.model_trained(tracking_uri, settings.registered_model_name, version)
        parts = [html.P(f"Model version {version}, registered {trained}." if version else
                        f"Not forecast: {facts.excluded or 'no forecast published'}.", id="model-version")]
        if not facts.champion.empty:
            parts += [html.H4("Champion and runner-up (backtest SMAPE)"), table(facts.champion, id="champion")]
        if not facts.scores.empty:
            parts += [html.H4("Every model's backtest scores"), table(facts.scores)]
        parts += [html.H4("Accuracy of past forecasts"),
                  table(facts.past) if not facts.past.empty else
                  html.P("No past forecast of this series has met its actuals yet.")]
        return series_figure(rows, label), parts

    @app.callback(Output("totals-chart", "figure"), Input("totals-by", "value"))
    def show_totals(dimension):
        with data.reading(paths) as ctx:
            frame = data.totals(ctx, dimension)
        figure = go.Figure()
        for origin, color in (("Train", ACTUAL), ("Predict", FORECAST)):
            part = frame[frame["origin"] == origin]
            figure.add_trace(go.Bar(x=part[dimension], y=part["units"], name="actual" if origin == "Train" else
                                    "forecast", marker_color=color))
        figure.update_layout(barmode="group", height=360, template="plotly_white",
                             margin={"l": 40, "r": 10, "t": 20, "b": 90})
        return figure

    @app.callback(Output("answer", "children"), Input("ask", "n_clicks"), Input("question", "n_submit"),
                  State("question", "value"), prevent_initial_call=True)
    def answer(_clicks, _submits, question):
        if not question:
            return html.P("Type a question first.")
        result = ask(question, paths, settings.ask)
        parts = [html.Pre(result.text, id="answer-text", style={"whiteSpace": "pre-wrap"}),
                 table(result.table, id="answer-table")]
        if result.chart:
            parts.append(html.Img(id="answer-chart", src="data:image/png;base64,"
                                  + base64.b64encode(result.chart).decode(), style={"maxWidth": "100%"}))
        parts += [html.H4("SQL"), html.Pre(";\n".join(result.sql) or "none ran", id="answer-sql",
                                            style={"whiteSpace": "pre-wrap", "background": "#f6f6f6"}),
                  html.P(f"engine: {result.engine}", id="answer-engine")]
        return parts

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = build_app(DataPaths.from_env(), load_settings())
    print(f"forecast explorer on http://{args.host}:{args.port}", flush=True)
    app.run(host=args.host, port=args.port, debug=False)


if __name__ == "__main__":
    main()
