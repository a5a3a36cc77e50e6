"""The offline engine on a small hand-made data directory: English and French, names matched forgivingly,
ambiguous names answered with candidates, questions out of reach refused; numbers checked against pandas."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_assets.ask.intents import parse
from mlops_assets.ask.names import Names, build_entities, find_names
from mlops_assets.ask.service import ask
from mlops_assets.warehouse import read_snapshot
from mlops_assets_tests.ask.conftest import PRODUCTS

PNG = b"\x89PNG\r\n\x1a\n"
ENTITIES = Names(build_entities(PRODUCTS))


def _overall(paths) -> pd.DataFrame:
    return read_snapshot(paths.exports, "serving.sales_overall")


@pytest.mark.parametrize(("question", "kind", "names"), [
    ("sales of Etorki 200g", "product", ["P001"]),
    ("ventes de etorki 200G", "product", ["P001"]),
    ("show etorky 500 forecast", "product", ["P005"]),  # a typo and a cut size
    ("forecast of p004", "product", ["P004"]),  # an id, any case
    ("Presidnet camembert", "product", ["P002"]),
    ("ventes de la marque Président", "brand", ["Président"]),
    ("sales for product Etorki", "brand", ["Etorki"]),  # a brand named as a product: the brand
    ("total of HARD CHEESE", "category", ["Hard cheese"]),
    ("babybel and coeur de lion", "brand", ["Babybel", "Coeur de Lion"]),
])
def test_names_are_matched_forgivingly(question, kind, names):
    found = find_names(question, ENTITIES)
    assert not found.ambiguous
    assert [e.name for e in found.entities if e.kind == kind] == names


def test_an_ambiguous_name_gives_its_candidates():
    found = find_names("sales of camembert", ENTITIES)
    assert found.entities == []
    (words, candidates), = found.ambiguous
    assert words == "camembert" and sorted(e.name for e in candidates) == ["P002", "P003"]


@pytest.mark.parametrize(("question", "intent"), [
    ("Which series are not forecast and why?", "excluded"),
    ("Quelles séries ne sont pas prévues et pourquoi ?", "excluded"),
    ("widest intervals", "widest"),
    ("Quels produits ont les intervalles les plus larges ?", "widest"),
    ("How accurate were past forecasts?", "past_accuracy"),
    ("Les prévisions passées étaient-elles justes ?", "past_accuracy"),
    ("Which model wins?", "model_wins"),
    ("Quel modèle gagne ?", "model_wins"),
    ("How accurate is each model?", "model_accuracy"),
    ("Précision de chaque modèle", "model_accuracy"),
    ("This year vs last year", "yoy"),
    ("Cette année par rapport à l'an dernier", "yoy"),
    ("Top 3 products", "top"),
    ("Les 2 produits les moins vendus", "top"),
    ("Total sales by brand", "totals"),
    ("Répartition des ventes par catégorie", "totals"),
    ("Statistics of sales", "stats"),
    ("How many brands?", "count"),
])
def test_intents_in_english_and_french(question, intent):
    assert parse(question).intent == intent


def test_the_demo_question_draws_actuals_and_forecast(published):
    answer = ask("Please show a graphic with sales for product Etorki and the prediction from the model, on a line "
                 "plot", published)
    assert answer.engine == "offline" and answer.chart.startswith(PNG) and answer.chart_path.exists()
    assert "Etorki 200g" in answer.text and "Etorki 500g" in answer.text
    overall = _overall(published)
    expected = overall[(overall["unique_id"] == "P001") & (overall["origin"] == "Predict")]["sales"].sum()
    assert f"forecast {expected:,.0f} units" in answer.text
    assert all("serving.sales_overall" in sql for sql in answer.sql)


def test_totals_and_shares_by_brand_match_pandas(published):
    answer = ask("Part des ventes par marque en 2025", published)
    overall = _overall(published)
    actual = overall[(overall["origin"] == "Train") & (overall["ds"].dt.year == 2025)]
    expected = actual.groupby("brand")["sales"].sum().sort_values(ascending=False)
    table = answer.table.set_index("brand")
    assert list(table.index) == list(expected.index)
    assert table["units"].to_dict() == pytest.approx(expected.to_dict())
    assert table["share_pct"].to_dict() == pytest.approx((100 * expected / expected.sum()).round(2).to_dict())


def test_top_and_bottom_products_match_pandas(published):
    overall = _overall(published)
    forecast = overall[overall["origin"] == "Predict"].groupby("product_name")["sales"].sum()
    top = ask("top 2 products by forecast", published).table
    assert list(top["product"]) == list(forecast.sort_values(ascending=False).index[:2])
    actual = overall[overall["origin"] == "Train"].groupby("product_name")["sales"].sum()
    bottom = ask("les 2 produits les moins vendus", published).table
    assert list(bottom["product"]) == list(actual.sort_values().index[:2])


def test_model_questions(published):
    wins = ask("which model wins?", published)
    assert dict(zip(wins.table["model"], wins.table["series"], strict=True)) == {"AutoETS": 2, "Naive": 2}
    accuracy = ask("précision des modèles", published).table.set_index("model")
    assert accuracy.loc["AutoETS", "mean_smape"] == pytest.approx((10 + 22 + 30 + 41) / 4)
    past = ask("how accurate were past forecasts?", published)
    assert past.table["forecasts"].sum() == 2 and past.table["in_95_pct"].iloc[0] == pytest.approx(50.0)


def test_excluded_and_widest(published):
    excluded = ask("quelles séries ne sont pas prévues et pourquoi ?", published)
    assert list(excluded.table["unique_id"]) == ["P005"] and "too_short 1" in excluded.text
    widest = ask("widest intervals", published)
    assert widest.table["unique_id"].iloc[0] == "P002"


def test_ambiguous_and_out_of_reach_questions_run_no_sql(published):
    ambiguous = ask("plot the sales of camembert", published)
    assert "could mean several things" in ambiguous.text and ambiguous.sql == []
    assert set(ambiguous.table["name"]) == {"Président Camembert 250g", "Coeur de Lion Camembert 250g"}
    for question in ("what's the weather in Paris?", "quel est le prix moyen ?", "tell me a joke",
                     "drop table serving.sales_overall"):
        answer = ask(question, published)
        assert answer.text.startswith("I can't answer that from these tables"), question
        assert answer.sql == [] and answer.chart is None


@pytest.fixture(scope="module")
def nameless(tmp_path_factory):
    """Series files without names, brands or categories (source: series): the ids are the names."""
    from mlops_assets.serving.overall import build_sales_overall
    from mlops_assets.settings import DataPaths
    from mlops_assets.warehouse import publish_snapshot

    paths = DataPaths(tmp_path_factory.mktemp("nameless"))
    ids = ["jewelry_001", "jewelry_002", "10055165"]
    ds = pd.date_range("2025-01-06", periods=20, freq="W-MON")
    gold = pd.DataFrame({"unique_id": [u for u in ids for _ in ds], "ds": list(ds) * 3, "y": 5.0,
                         "product_id": [u for u in ids for _ in ds], "product_name": None, "brand": None,
                         "category": None})
    future = pd.date_range(ds[-1] + pd.Timedelta(weeks=1), periods=2, freq="W-MON")
    forecasts = pd.DataFrame({"unique_id": [u for u in ids for _ in future], "ds": list(future) * 3,
                              "model": "Naive", "y_hat": 5.0, "lo_80": 4.0, "hi_80": 6.0, "lo_95": 3.0,
                              "hi_95": 7.0, "model_version": "1"})
    publish_snapshot(paths.exports, "serving.sales_overall", build_sales_overall(gold, forecasts))
    return paths


def test_series_named_only_by_their_ids(nameless):
    for question, uid in (("plot jewelry_002", "jewelry_002"), ("forecast of JEWELRY 001", "jewelry_001"),
                          ("sales of 10055165", "10055165")):
        answer = ask(question, nameless)
        assert set(answer.table["unique_id"]) == {uid}, question
    assert "could mean several things" in ask("sales of jewelry", nameless).text
    by_brand = ask("total sales by brand", nameless)
    assert by_brand.text.startswith("I can't answer that from these tables (the series have no brand")
    # Equal sales: ties go by name, and a series without a name is shown by its id.
    assert ask("top 2 products", nameless).table["product"].tolist() == ["10055165", "jewelry_001"]


def test_questions_said_loosely(published):
    overall = _overall(published)
    actual = overall[overall["origin"] == "Train"]
    in_2025 = ask("How much did we sell in 2025?", published)
    assert in_2025.table["units"].iloc[0] == pytest.approx(actual[actual["ds"].dt.year == 2025]["sales"].sum())
    share = ask("What percentage of sales comes from Hard cheese?", published)
    by_category = actual.groupby("category")["sales"].sum()
    hard = 100 * by_category["Hard cheese"] / by_category.sum()
    assert f"(Hard cheese: {hard:.1f}%)" in share.text
    compared = ask("compare Etorki 200g with Babybel Mini x12", published)
    assert set(compared.table["unique_id"]) == {"P001", "P004"}
    growing = ask("Quels produits progressent le plus ?", published)
    assert list(growing.table["change_pct"]) == sorted(growing.table["change_pct"], reverse=True)
    assert ask("quelle est la tendance des ventes ?", published).chart is not None


def test_master_data_and_models_of_a_brand(published):
    listed = ask("liste des produits Etorki", published)
    assert listed.table["product_id"].tolist() == ["P001", "P005"]
    assert ask("What brands do we sell?", published).table["brand"].tolist() == sorted(PRODUCTS["brand"].unique())
    wins = ask("which model wins for Etorki?", published)  # P005 is not forecast: P001's champion only
    assert wins.table[["model", "series"]].values.tolist() == [["AutoETS", 1]]
