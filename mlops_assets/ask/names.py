"""Find the products, brands, categories, customers, channels and regions a question names, forgivingly.

Case, accents and punctuation do not count; a word may be misspelt ("Etorky") or cut short ("Roquef"); an id
(P003) counts as the product. A name every word of which the question holds is a full match; the most
specific full match wins (a product over its brand). Several products matched by the same words ("Camembert"
names three) are ambiguous: the caller answers with the candidates rather than guessing.
"""

from __future__ import annotations

import bisect
import difflib
import re
import unicodedata
from dataclasses import dataclass, field

import pandas as pd

# Words that carry the question's intent, never a name: a product called "Sales" would be a bad idea anyway.
STOPWORDS = frozenset("""
a an the and or of for from to in on at by with without per vs versus is are was were be been do does did
what which who whom whose why how many much show me please give list tell display draw plot chart graph
graphic graphics line lines curve bar bars figure picture visualise visualize see compare comparison between
sales sale sold sell selling units revenue forecast forecasts forecasted forecasting prediction predictions
predicted predict model models modele modeles actual actuals history historic historical past next future
product products item items sku brand brands category categories customer customers client clients channel
channels region regions origin total totals sum share percent percentage week weeks weekly month months monthly
year years yearly quarter quarters day days data table value values number all each every its their this that
these those my our your it them they le la les un une des du de d l au aux et ou pour par sur avec sans dans
en est sont quel quelle quels quelles quoi comment combien montre montrez affiche affichez afficher donne
donnez moi svp stp graphique courbe courbes ligne lignes trace tracer dessine vente ventes vendu vendus
prevision previsions prediction predite produit produits marque marques categorie client canal canaux
semaine semaines mois annee annees trimestre origine part somme modele
also then over under about using use via et/ou plus moins me can could would you we i
""".split())
_WORD = re.compile(r"[a-z0-9]+")
FUZZY = 0.8  # difflib ratio for a misspelt word of at least MIN_FUZZY letters
MIN_FUZZY = 5
MIN_PREFIX = 4
# Pack sizes and counts: a name's optional words ("Etorki 200g" is meant by "Etorki" too, when no brand is).
_SIZE = re.compile(r"^(\d+[a-z]{0,3}|x\d+|lot)$")


def normalized(text: str) -> str:
    """Lower case, accents and punctuation gone: "Président Brie 1kg" -> "president brie 1kg"."""
    plain = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return " ".join(_WORD.findall(plain.lower()))


def words(text: str) -> list[str]:
    return normalized(text).split()


@dataclass(frozen=True)
class Entity:
    kind: str  # product, brand, category, customer, channel, region
    name: str  # as stored: the value to filter on (the product's id for a product)
    label: str  # as shown
    words: tuple[str, ...] = field(compare=False)


@dataclass
class Match:
    entity: Entity
    used: frozenset[int]  # positions of the question's words it consumed
    exact: bool  # every word matched without a typo or a cut
    unmatched: int = 0  # optional words (sizes) the question did not say


@dataclass
class Found:
    """What a question names: entities per kind, or the candidates of an ambiguous name."""

    entities: list[Entity] = field(default_factory=list)
    ambiguous: list[tuple[str, list[Entity]]] = field(default_factory=list)  # (the words, candidates)

    def of(self, kind: str) -> list[Entity]:
        return [e for e in self.entities if e.kind == kind]


_SPECIFIC = {"product": 0, "customer": 1, "brand": 2, "category": 3, "channel": 4, "region": 5}


def build_entities(products: pd.DataFrame, customers: pd.DataFrame | None = None) -> list[Entity]:
    """Entities from the products (product_id, product_name, brand, category) and customers frames."""
    found: dict[tuple[str, str], Entity] = {}

    def add(kind: str, name, label) -> None:
        if name is None or pd.isna(name) or str(name) == "":
            return
        key = (kind, str(name))
        if key not in found:
            # A name-less series is named by its id, every word of it ("jewelry_001": jewelry and 001).
            ws = tuple(words(label)) if str(label) == str(name) else (
                tuple(w for w in words(label) if w not in STOPWORDS) or tuple(words(label)))
            found[key] = Entity(kind, str(name), str(label), ws)

    for row in products.itertuples(index=False):
        add("product", row.product_id, row.product_name if pd.notna(row.product_name) else row.product_id)
        add("brand", getattr(row, "brand", None), getattr(row, "brand", None))
        add("category", getattr(row, "category", None), getattr(row, "category", None))
    if customers is not None:
        for row in customers.itertuples(index=False):
            add("customer", row.customer_id, row.customer_name if pd.notna(row.customer_name) else row.customer_id)
            add("channel", getattr(row, "channel", None), getattr(row, "channel", None))
            add("region", getattr(row, "region", None), getattr(row, "region", None))
    return sorted(found.values(), key=lambda e: (_SPECIFIC[e.kind], e.label))


def _word_match(query: str, name: str) -> str | None:
    """'exact', 'loose' (a typo or a cut) or None."""
    if query == name:
        return "exact"
    if query.isdigit() and name.startswith(query) and name[len(query):].isalpha():
        return "loose"  # 500 for 500g
    if len(query) >= MIN_PREFIX and name.startswith(query):
        return "loose"
    if _fuzzy(query, name):
        return "loose"
    return None


def _fuzzy(query: str, name: str) -> bool:
    """A typo: long enough, the same first letter ("average" is not "Auvergne"), and close enough."""
    return (len(query) >= MIN_FUZZY and len(name) >= MIN_FUZZY and query[0] == name[0]
            and difflib.SequenceMatcher(None, query, name).ratio() >= FUZZY)


Hits = dict[str, list[tuple[int, str]]]  # a name word -> (position in the question, how it matched)


class Names:
    """The entities indexed by word and by id, so a question is matched against the few that share a word
    with it: 30,000 products answer as fast as 60."""

    def __init__(self, entities: list[Entity]) -> None:
        self.entities = entities
        self.by_word: dict[str, list[Entity]] = {}
        self.by_id: dict[tuple[str, ...], list[Entity]] = {}
        for entity in entities:
            for word in set(entity.words):
                self.by_word.setdefault(word, []).append(entity)
            if entity.kind in ("product", "customer"):
                self.by_id.setdefault(tuple(words(entity.name)), []).append(entity)
        self.vocabulary = sorted(self.by_word)
        self.spelled = [w for w in self.vocabulary if w.isalpha() and len(w) >= MIN_FUZZY]
        self.longest_id = max((len(k) for k in self.by_id), default=0)

    def _starting(self, prefix: str) -> list[str]:
        first = bisect.bisect_left(self.vocabulary, prefix)
        last = bisect.bisect_left(self.vocabulary, prefix + "\x7f")
        return self.vocabulary[first:last]

    def hits(self, question: list[str]) -> Hits:
        found: Hits = {}
        for i, q in enumerate(question):
            if q in self.by_word:
                found.setdefault(q, []).append((i, "exact"))
            if q in STOPWORDS:
                continue
            loose = set()
            if q.isdigit() or len(q) >= MIN_PREFIX:
                loose |= {w for w in self._starting(q) if _word_match(q, w) == "loose"}
            if len(q) >= MIN_FUZZY and q.isalpha():
                loose |= {w for w in difflib.get_close_matches(q, self.spelled, n=20, cutoff=FUZZY) if _fuzzy(q, w)}
            for w in sorted(loose - {q}):
                found.setdefault(w, []).append((i, "loose"))
        return found

    def ids(self, question: list[str]) -> list[Match]:
        """Entities whose id the question holds, word for word (P003, jewelry_001, 10055165), any case."""
        matches = []
        for n in range(1, self.longest_id + 1):
            for at in range(len(question) - n + 1):
                for entity in self.by_id.get(tuple(question[at:at + n]), []):
                    matches.append(Match(entity, frozenset(range(at, at + n)), True))
        return matches


def _match(entity: Entity, hits: Hits) -> Match | None:
    used, exact, unmatched = set(), True, 0
    named = entity.label != entity.name
    core = [w for w in entity.words if not (named and _SIZE.match(w))] or list(entity.words)
    for word in entity.words:
        if word not in hits:
            if word in core:
                return None
            unmatched += 1
            continue
        i, how = min(hits[word], key=lambda h: (h[1] != "exact", h[0]))
        used.add(i)
        exact &= how == "exact"
    return Match(entity, frozenset(used), exact, unmatched)


def find_names(question: str, names: Names) -> Found:
    """The entities a question names (see the module's doc)."""
    q = words(question)
    hits = names.hits(q)
    candidates = {id(e): e for w in hits for e in names.by_word[w]}
    full = [m for e in candidates.values() if (m := _match(e, hits)) is not None] + names.ids(q)
    # A match inside a longer one of the same words ("Etorki" in "Etorki 200g") gives way to it; among
    # equally long ones, an exact spelling beats a typo.
    full = [m for m in full if not any(o.used > m.used or (o.used == m.used and o.exact and not m.exact
                                                            and o.entity.kind == m.entity.kind)
                                       for o in full)]
    found, claimed = Found(), set()
    by_words: dict[frozenset[int], list[Match]] = {}
    for m in full:
        if m not in by_words.setdefault(m.used, []):
            by_words[m.used].append(m)
    for used, matches in sorted(by_words.items(), key=lambda item: min(item[0])):
        fewest = min(m.unmatched for m in matches)
        matches = [m for m in matches if m.unmatched == fewest or m.entity.kind != "product"]
        kinds = sorted({m.entity.kind for m in matches}, key=_SPECIFIC.get)
        # The same words naming a brand and a product of it ("Etorki"): the broader name was meant.
        best = [m.entity for m in matches if m.entity.kind == kinds[-1]] if _one_name(matches) else None
        if best is None:
            best = [m.entity for m in matches if m.entity.kind == kinds[0]]
        best = sorted(set(best), key=lambda e: (e.label, e.name))
        if len(best) > 1 and best[0].kind == "product":
            found.ambiguous.append((_said(q, used), best))
        else:
            found.entities.extend(best)
        claimed |= used
    _add_partial(found, q, names, hits, claimed)
    return found


def _one_name(matches: list[Match]) -> bool:
    """True when one brand/category matched and the products matched are all of it by name."""
    groups = {m.entity for m in matches if m.entity.kind in ("brand", "category", "channel", "region")}
    return len(groups) == 1


def _said(q: list[str], used: frozenset[int]) -> str:
    return " ".join(q[i] for i in sorted(used))


def _add_partial(found: Found, q: list[str], names: Names, hits: Hits, claimed: set[int]) -> None:
    """Words left that match part of names (e.g. 'roquefort'): one group of them, or candidates."""
    left = [i for i, w in enumerate(q) if i not in claimed and w not in STOPWORDS and not w.isdigit() and len(w) >= 3]
    for i in left:
        exact = names.by_word.get(q[i], [])
        # A part of a name is taken as written or cut short ("roquef"), never as a typo: "comes" is not "Comté".
        loose = [e for w, at in hits.items() if w.startswith(q[i]) and any(j == i for j, _ in at)
                 for e in names.by_word[w]]
        shared = sorted(set(exact or loose), key=lambda e: (_SPECIFIC[e.kind], e.label))
        if not shared:
            continue
        groups = [e for e in shared if e.kind not in ("product", "customer")]
        if len(groups) == 1:
            found.entities.append(groups[0])
        elif len(shared) == 1:
            found.entities.append(shared[0])
        else:
            found.ambiguous.append((q[i], shared[:12]))
