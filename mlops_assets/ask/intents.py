"""What a question asks, in English or French: its intent, the dimensions it groups by, N, the measure.

Matching is on the question lower-cased without accents (names.normalized), by word patterns. The intents
are tried in a fixed order, the most specific first ("which series are not forecast" is about excluded
series, though it says "forecast"); a question none of them fits is out of reach.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlops_assets.ask.names import normalized

_PATTERNS: list[tuple[str, str]] = [
    ("excluded", r"not (being )?(forecast|predicted)|n t (forecast|predicted)|no forecast|without (a )?forecast"
                 r"|excluded|exclusion|left out|pas (de )?prevision|pas prevu|pas predit|non prevu|exclu"
                 r"|sans prevision"),
    ("widest", r"widest|wide(st)? interval|largest interval|biggest interval|most uncertain|uncertain|incertain"
               r"|plus larges?|intervalles? larges?|interval width|largeur"),
    ("past_accuracy", r"past forecast|previous forecast|earlier forecast|forecasts? (were|was|turned)|realized"
                      r"|realised|once actuals|actuals came|forecast accuracy over time|previsions? passees?"
                      r"|anciennes previsions|previsions precedentes|precision passee|se sont (elles )?realisees"
                      r"|how (good|accurate|right) were"),
    ("model_wins", r"which model|what model|quel(s|le|les)? modeles?|best model|meilleurs? modeles?|champion"
                   r"|\bwins?\b|winning|winner|gagne|gagnant|runner up|second best"),
    ("model_accuracy", r"accura|precision|precis|smape|\bmape\b|\bmae\b|rmse|wape|\bmase\b|\berrors?\b|erreurs?"
                       r"|backtest|how good|how well|performance"),
    ("yoy", r"this year|last year|year over year|year on year|\byoy\b|previous year|prior year|same period last"
            r"|cette annee|an dernier|annee derniere|annee precedente|l an passe|par rapport a l an|grow|growth"
            r"|croissance|progress|augment|increas|declin|decreas|falling|baiss|recul|chute|shrink"),
    ("top", r"\btop\b|best sell|bestsell|biggest|\bmost\b|highest|best|meilleure?s?|plus vendu|plus gros"
            r"|le plus|la plus|les plus"
            r"|premiers?\b|bottom|worst|least|lowest|smallest|moins vendu|pires?|plus faibles?|derniers?\b"),
    ("count", r"how many|combien|number of|nombre de"),
    ("listing", r"^(list|liste|lister|enumerate|name)\b|\b(list|liste) (of |des |les )?(the |all )?"
                r"(products?|produits?|brands?|marques?|customers?|clients?|categor\w*)|which (products|customers|"
                r"brands|categories) (are|exist|do we have)|quels sont les (produits|clients|marques)|what (products|"
                r"brands|customers|categories) (are there|do we (have|sell))"),
    ("stats", r"statistic|statistique|describe|summary|resume|average|mean|moyenne|median|mediane|minimum"
              r"|maximum|std|standard deviation|ecart type|variance"),
    ("totals", r"total|\bsum\b|somme|share|\bpart\b|parts|proportion|percent|pourcentage|repartition|distribution"
               r"|breakdown|split|ventilation|\bby\b|\bper\b|\bpar\b|each|chaque|cumul"),
]
# The order intents are tried in, which is not the order above: top before totals, and so on.
ORDER = ["excluded", "widest", "past_accuracy", "model_wins", "model_accuracy", "yoy", "top", "count", "listing",
         "stats", "totals"]

GROWTH = re.compile(r"grow|growth|croissance|progress|augment|increas|declin|decreas|falling|baiss|recul|chute"
                    r"|shrink")
COMPARE = re.compile(r"compar|versus|\bvs\b|against|contre|face a|\bshow|montre|affiche|display|\bsee\b|voir|view")
CHART = re.compile(r"plot|chart|graph|graphic|graphique|courbe|curve|\bline\b|ligne|visuali|draw|dessine|trace"
                   r"|figure|diagram|histogram|picture|image|png|evolution|over time|trend|tendance")
BOTTOM = re.compile(r"bottom|worst|least|lowest|smallest|moins vendu|pires?|plus faibles?|derniers?\b")
FORECAST = re.compile(r"forecast|predict|prediction|prevision|predit|futur|next|prochaine?s?|coming|a venir")
ACTUAL = re.compile(r"actual|history|historique|reel|real|sold|vendu|past|passe|train\b")
SALES = re.compile(r"\b(sales|sold|sell|units|volumes?|demand|ventes?|vendu\w*|unites|demande|quantit\w*)\b")
ORIGIN = re.compile(r"origin|origine|train (vs|versus|and|et|or|ou) predict|actuals? (vs|versus|and) forecasts?"
                    r"|reel(les?)? (vs|et) prevision")
SHARE = re.compile(r"share|\bpart\b|parts|proportion|percent|pourcentage|repartition|distribution|breakdown|%")
RELATIVE = re.compile(r"relative|relatif|relativ|percent|pourcentage|share")
OUT_OF_SCOPE = re.compile(r"weather|meteo|profit|margin|marge|stock|inventory|inventaire|employee|salari|salary"
                          r"|salaire|price|prix|revenue|chiffre d affaires|turnover|cost|cout|delete|drop|insert"
                          r"|update|supprime|efface")

DIMENSIONS: list[tuple[str, str]] = [
    ("brand", r"brands?|marques?"),
    ("category", r"categor(y|ies|ie|ies)|familles?|types? de produit"),
    ("customer", r"customers?|clients?"),
    ("channel", r"channels?|canal|canaux"),
    ("region", r"regions?"),
    ("origin", r"origins?|origines?|train (vs|versus|and|et|or|ou) predict"),
    ("product", r"products?|produits?|items?|articles?|skus?|references?|series"),
    ("model", r"models?|modeles?"),
]
PERIODS: list[tuple[str, str]] = [
    ("week", r"weeks?|weekly|semaines?|hebdo\w*"),
    ("month", r"months?|monthly|mois|mensuel\w*"),
    ("quarter", r"quarters?|quarterly|trimestres?|trimestriel\w*"),
    ("year", r"years?|yearly|annual|annees?|ans?|annuel\w*"),
]
_GROUPING = r"(by|per|par|for each|pour chaque|each|chaque|across|broken down by|split by|selon|de|des|du)"
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
            "ten": 10, "twenty": 20, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "sept": 7,
            "huit": 8, "neuf": 9, "dix": 10, "vingt": 20}


@dataclass
class Parsed:
    text: str  # the question, normalized
    intent: str | None
    chart: bool  # a chart was asked for
    dimensions: list[str] = field(default_factory=list)  # what to group by, the first the main one
    period: str | None = None  # week, month, quarter, year
    n: int | None = None
    bottom: bool = False
    forecast: bool = False  # the forecast (Predict) is asked for
    actual: bool = False
    sales: bool = False  # sales named, neither actuals nor forecast in particular
    origin: bool = False  # both, side by side
    share: bool = False
    year: int | None = None


def _number(text: str) -> int | None:
    found = re.search(r"\b(top|bottom|best|worst|first|last|premiers?|derniers?|les|the|meilleurs?|pires?)"
                      r"\s+(\d{1,3}|" + "|".join(_NUMBERS) + r")\b", text)
    found = found or re.search(r"\b(\d{1,3}|" + "|".join(_NUMBERS) + r")\s+(best|worst|top|biggest|largest|"
                               r"meilleur|pire|plus|moins|premiers?|derniers?|products?|produits?|brands?|marques?|"
                               r"series|customers?|clients?|widest)", text)
    if not found:
        return None
    word = found.group(2) if found.group(1) in ("top", "bottom", "best", "worst", "first", "last", "premier",
                                                 "premiers", "dernier", "derniers", "les", "the", "meilleur",
                                                 "meilleurs", "pire", "pires") else found.group(1)
    value = int(word) if word.isdigit() else _NUMBERS.get(word)
    return value if value and 0 < value <= 100 else None


def _dimensions(text: str) -> list[str]:
    found = []
    for name, pattern in DIMENSIONS:
        hit = re.search(rf"\b{_GROUPING}\s+(the\s+|la\s+|le\s+|les\s+|l\s+)?({pattern})\b", text)
        hit = hit or re.search(rf"\b({pattern})\b\s+(totals?|share|sales|ventes)", text)
        if hit:
            found.append((hit.start(), name))
    return [name for _, name in sorted(found)]


def mentioned(text: str) -> list[str]:
    """Dimensions the question names anywhere ("top 3 customers"), in the order it names them."""
    found = [(hit.start(), name) for name, pattern in DIMENSIONS if (hit := re.search(rf"\b({pattern})\b", text))]
    return [name for _, name in sorted(found)]


def mentioned_period(text: str) -> str | None:
    """The period the question names anywhere ("the forecast for next month"), if one."""
    found = [(hit.start(), name) for name, pattern in PERIODS if (hit := re.search(rf"\b({pattern})\b", text))]
    return min(found)[1] if found else None


def _period(text: str) -> str | None:
    for name, pattern in PERIODS:
        if re.search(rf"\b{_GROUPING}\s+(the\s+|la\s+|le\s+|l\s+)?({pattern})\b|\b(weekly|monthly|quarterly|yearly"
                     rf"|annual|hebdomadaires?|mensuel(le)?s?|trimestriel(le)?s?|annuel(le)?s?)\b", text):
            word = re.search(r"\b(weekly|monthly|quarterly|yearly|annual|hebdo\w*|mensuel\w*|trimestriel\w*|"
                             r"annuel\w*)\b", text)
            if word and not re.search(rf"\b{_GROUPING}\s+(the\s+|la\s+|le\s+|l\s+)?({pattern})\b", text):
                return {"weekly": "week", "monthly": "month", "quarterly": "quarter"}.get(
                    word.group(1), "week" if word.group(1).startswith("hebdo") else "month"
                    if word.group(1).startswith("mensuel") else "quarter" if word.group(1).startswith("trimes")
                    else "year")
            return name
    return None


def parse(question: str) -> Parsed:
    text = normalized(question)
    intent = next((name for name in ORDER if re.search(dict(_PATTERNS)[name], text)), None)
    year = re.search(r"\b(in|en|during|pendant|for|pour|of|de)\s+(20\d\d)\b", text)
    return Parsed(
        text=text, intent=intent, chart=bool(CHART.search(text)), dimensions=_dimensions(text),
        period=_period(text), n=_number(text), bottom=bool(BOTTOM.search(text)),
        forecast=bool(FORECAST.search(text)), actual=bool(ACTUAL.search(text)), sales=bool(SALES.search(text)),
        origin=bool(ORIGIN.search(text)),
        share=bool(SHARE.search(text)), year=int(year.group(2)) if year else None,
    )
