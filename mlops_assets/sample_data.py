"""A made-up but lifelike cheese and dairy wholesaler: three years of daily order lines as landing CSVs.

The sample carries what real sales data throws at a forecaster: a Christmas peak, trends, promotions
that lift sales, niche products that sell in few weeks, products launched late or discontinued, and
returns. Everything derives from one seed, so the same seed writes byte-identical files.

Promotions (about 1.5 per product, 10-40% off, half of them for one customer, three planned after the
end of the data) multiply a customer's expected units on their days by about ``1 + 4 * discount``: the
chance of an order line and its size each by the square root, so 25% off doubles the units. In the
weekly gold the median product sells 1.28x more in weeks with at least 10% mean discount depth than in
weeks without (customer-only promotions and part-week promotions dilute it).
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.settings import DataPaths

DEFAULT_START = date(2023, 10, 2)
DEFAULT_END = date(2026, 9, 27)

# Row-level defects mix DEFECT_GOOD_ROWS valid lines with DEFECT_BAD_ROWS bad ones; the other kinds make
# the whole file unusable. All defect files go to sales_orders/, the table the sensor sees most often.
DEFECT_KINDS = (
    "missing_column", "wrong_types", "unknown_product", "duplicate_lines",
    "negative_price", "future_dates", "empty_file", "not_csv",
)
FILE_LEVEL_DEFECTS = frozenset({"missing_column", "empty_file", "not_csv"})
DEFECT_GOOD_ROWS = 20
DEFECT_BAD_ROWS = 5

# brand, category, base price in euros, variants
_CATALOG = [
    ("Etorki", "Hard cheese", 4.9, ["200g", "500g", "tranches 120g"]),
    ("Président", "Soft cheese", 2.6, ["Camembert 250g", "Brie 1kg", "Coulommiers 350g"]),
    ("Babybel", "Hard cheese", 3.4, ["Mini x12", "Light x6", "Bio x6"]),
    ("Boursin", "Soft cheese", 2.9, ["Ail & Fines Herbes 150g", "Poivre 150g", "Cuisine 240g"]),
    ("Comté Juraflore", "Hard cheese", 6.8, ["18 mois 200g", "12 mois 250g", "râpé 150g"]),
    ("Roquefort Société", "Blue cheese", 4.2, ["100g", "250g", "Bio 100g"]),
    ("Saint Agur", "Blue cheese", 3.6, ["125g", "Crème 150g"]),
    ("Caprice des Dieux", "Soft cheese", 3.1, ["200g", "300g"]),
    ("Leerdammer", "Hard cheese", 3.3, ["Original tranches 160g", "Light 200g"]),
    ("Entremont", "Hard cheese", 2.8, ["Emmental râpé 200g", "Emmental 450g"]),
    ("Coeur de Lion", "Soft cheese", 2.4, ["Camembert 250g", "Brie 500g"]),
    ("Chavroux", "Goat cheese", 2.7, ["Bûche 150g", "Frais 150g"]),
    ("Petit Billy", "Goat cheese", 2.5, ["Chèvre frais 150g", "Bûche 180g"]),
    ("Paysan Breton", "Butter", 2.3, ["Beurre demi-sel 250g", "Beurre doux 250g", "Beurre moulé 500g"]),
    ("Elle & Vire", "Cream", 2.9, ["Crème entière 1L", "Crème fraîche 20cl", "Crème épaisse 50cl"]),
    ("Bridel", "Cream", 1.6, ["Crème légère 20cl", "Crème épaisse 40cl"]),
    ("Lactel", "Cream", 1.5, ["Crème UHT 20cl", "Crème liquide 50cl"]),
    ("Yoplait", "Yogurt", 2.2, ["Panier x8", "Yop 500g", "Perle de lait x4"]),
    ("Danone", "Yogurt", 2.0, ["Nature x4", "Activia x8", "Danette x4"]),
    ("Papillon", "Blue cheese", 4.0, ["Roquefort Révélation 100g", "Roquefort 200g"]),
    ("Le Rustique", "Soft cheese", 2.5, ["Camembert 250g", "Brie 200g"]),
    ("Ossau-Iraty Agour", "Hard cheese", 7.2, ["250g", "AOP 500g"]),
    ("Mont d'Or Sancey", "Soft cheese", 8.5, ["AOP 500g"]),
    ("Beaufort Pochat", "Hard cheese", 7.9, ["AOP 250g"]),
]
# channel, orders on a share of days, units per line, breadth of the assortment ordered, price factor
_CHANNELS = {
    "Retail": (0.70, 6.0, 1.0, 1.00), "Wholesale": (0.35, 20.0, 1.5, 0.85),
    "Foodservice": (0.60, 4.0, 0.8, 0.90), "Online": (0.80, 1.5, 0.5, 1.05),
}
_CHANNEL_CYCLE = ["Retail", "Retail", "Wholesale", "Foodservice", "Online"]
_NAME_BY_CHANNEL = {"Retail": "Fromagerie", "Wholesale": "Grossiste", "Foodservice": "Brasserie",
                    "Online": "Fromages en ligne"}
_CITIES = [
    ("Paris", "Île-de-France"), ("Lyon", "Auvergne-Rhône-Alpes"), ("Bordeaux", "Nouvelle-Aquitaine"),
    ("Toulouse", "Occitanie"), ("Rennes", "Bretagne"), ("Marseille", "Provence-Alpes-Côte d'Azur"),
    ("Versailles", "Île-de-France"), ("Grenoble", "Auvergne-Rhône-Alpes"), ("Bayonne", "Nouvelle-Aquitaine"),
    ("Montpellier", "Occitanie"), ("Brest", "Bretagne"), ("Nice", "Provence-Alpes-Côte d'Azur"),
]
# Christmas bump and winter-summer swing per category (yogurt sells in summer, cheese for the holidays)
_SEASON = {"Hard cheese": (0.8, 0.15), "Soft cheese": (0.7, 0.15), "Blue cheese": (0.9, 0.15),
           "Goat cheese": (0.3, -0.1), "Butter": (0.6, 0.1), "Cream": (0.9, 0.1), "Yogurt": (0.05, -0.2)}
_WEEKDAY = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.1])


@dataclass(frozen=True)
class _World:
    products: pd.DataFrame  # the products table plus: pop, price, qscale, xmas, winter, trend
    customers: pd.DataFrame  # the customers table plus: freq, size, breadth, price_factor
    affinity: np.ndarray  # products x customers
    promotions: pd.DataFrame
    start: date


def _catalog(n: int) -> list[tuple[str, str, str, float]]:
    """Round-robin over brands so the first products already cover every category."""
    rows, depth = [], max(len(v) for *_, v in _CATALOG)
    for lot in range(1, n + 2):
        for i in range(depth):
            for brand, category, price, variants in _CATALOG:
                if i < len(variants):
                    name = f"{brand} {variants[i]}" + (f" lot de {lot}" if lot > 1 else "")
                    rows.append((name, brand, category, round(price * lot * (1 + 0.15 * i), 2)))
        if len(rows) >= n:
            return rows[:n]
    return rows[:n]


def _world(seed: int, n_products: int, n_customers: int, start: date, end: date) -> _World:
    rng = np.random.default_rng(seed)
    width = max(3, len(str(n_products)))
    cat = _catalog(n_products)
    products = pd.DataFrame(cat, columns=["product_name", "brand", "category", "price"])
    products.insert(0, "product_id", [f"P{i + 1:0{width}d}" for i in range(n_products)])
    roles = rng.permutation(n_products)
    n_late, n_disc, n_inter = n_products // 12, n_products // 20, n_products // 10
    late, disc = roles[:n_late], roles[n_late:n_late + n_disc]
    inter = roles[n_late + n_disc:n_late + n_disc + n_inter]
    old_launch = [date(2005, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 6500, n_products)]
    launch = pd.Series(pd.to_datetime(old_launch)).where(rng.random(n_products) < 0.7)
    launch.iloc[late] = pd.to_datetime([end - timedelta(days=int(d)) for d in rng.integers(28, 182, n_late)])
    products["launch_date"] = launch.values
    discontinued = pd.Series(pd.NaT, index=products.index, dtype="datetime64[ns]")
    span = (end - start).days
    discontinued.iloc[disc] = pd.to_datetime(
        [start + timedelta(days=int(d)) for d in rng.integers(span // 3, span - 90, n_disc)])
    products["discontinued_date"] = discontinued.values
    pop = rng.lognormal(np.log(0.12), 0.5, n_products)
    pop[inter] = rng.uniform(0.008, 0.03, n_inter)
    products["pop"] = pop
    products["qscale"] = rng.lognormal(0.0, 0.3, n_products)
    products["xmas"] = products["category"].map(lambda c: _SEASON[c][0])
    products["winter"] = products["category"].map(lambda c: _SEASON[c][1])
    products["trend"] = rng.normal(0.03, 0.12, n_products)

    city = [_CITIES[i % len(_CITIES)] for i in range(n_customers)]
    channel = [_CHANNEL_CYCLE[i % len(_CHANNEL_CYCLE)] for i in range(n_customers)]
    cycle = len(_CITIES) * len(_CHANNEL_CYCLE)  # names repeat after this many customers: number them
    suffix = [f" {i // cycle + 1}" if i >= cycle else "" for i in range(n_customers)]
    customers = pd.DataFrame({
        "customer_id": [f"C{i + 1:0{max(3, len(str(n_customers)))}d}" for i in range(n_customers)],
        "customer_name": [f"{_NAME_BY_CHANNEL[ch]} {c}{s}"
                          for ch, (c, _), s in zip(channel, city, suffix, strict=True)],
        "channel": channel,
        "region": [r for _, r in city],
    })
    params = np.array([_CHANNELS[ch] for ch in channel])
    customers[["freq", "size", "breadth", "price_factor"]] = params
    affinity = rng.lognormal(0.0, 0.5, (n_products, n_customers))
    niche_buyers = rng.random((n_inter, n_customers)) < 0.3
    niche_buyers[np.arange(n_inter), rng.integers(0, n_customers, n_inter)] = True
    affinity[inter] *= niche_buyers * 1.5  # a niche product sells to a few customers only
    promotions = _promotions(rng, products, customers, start, end, late, disc)
    return _World(products, customers, affinity, promotions, start)


def _promotions(rng: np.random.Generator, products: pd.DataFrame, customers: pd.DataFrame, start: date,
                end: date, late: np.ndarray, disc: np.ndarray) -> pd.DataFrame:
    """About 1.5 promotions per product over the period, plus a few planned after its end."""
    span, n = (end - start).days, len(products)
    eligible = np.setdiff1d(np.arange(n), np.concatenate([late, disc]))
    n_past, n_planned = int(1.5 * n), 3
    product = rng.choice(eligible, n_past + n_planned)
    offset = np.concatenate([rng.integers(0, span - 21, n_past), span + rng.integers(14, 84, n_planned)])
    length = rng.choice([7, 14, 21], n_past + n_planned)
    starts = pd.to_datetime(start) + pd.to_timedelta(offset, unit="D")
    all_customers = rng.random(n_past + n_planned) < 0.5
    customer = customers["customer_id"].to_numpy()[rng.integers(0, len(customers), n_past + n_planned)]
    frame = pd.DataFrame({
        "product_id": products["product_id"].to_numpy()[product],
        "customer_id": np.where(all_customers, "", customer),
        "start_date": starts,
        "end_date": starts + pd.to_timedelta(length - 1, unit="D"),
        "discount_pct": rng.choice([10.0, 15.0, 20.0, 25.0, 30.0, 40.0], n_past + n_planned),
    }).sort_values(["start_date", "product_id"], kind="stable", ignore_index=True)
    frame.insert(0, "promotion_id", [f"PR-{i + 1:04d}" for i in range(len(frame))])
    return frame


def _simulate(world: _World, days: pd.DatetimeIndex, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Order lines of the given days: arrays of day, customer and product index, quantity, price."""
    prods, custs = world.products, world.customers
    doy = days.dayofyear.to_numpy()[:, None]
    to_xmas = np.minimum(np.abs(doy - 354), 365 - np.abs(doy - 354))
    years = ((days - pd.Timestamp(world.start)).days.to_numpy() / 365.25)[:, None]
    season = (1 + prods["xmas"].to_numpy() * np.exp(-0.5 * (to_xmas / 9.0) ** 2)
              + prods["winter"].to_numpy() * np.cos(2 * np.pi * (doy - 15) / 365.25))
    level = season * np.exp(prods["trend"].to_numpy() * years)
    ts = days.to_numpy()[:, None]
    launch, stop = prods["launch_date"].to_numpy(), prods["discontinued_date"].to_numpy()
    delta = ts - launch
    since_launch = np.where(np.isnat(delta), np.inf, delta / np.timedelta64(1, "D"))
    ramp = 1 - np.exp(-np.clip(since_launch, 0, None) / 30.0)
    active = (np.isnat(launch) | (ts >= launch)) & (np.isnat(stop) | (ts < stop))
    level = level * ramp * active

    # discount[d, c, p]: the best discount a customer gets on a product that day
    discount = np.zeros((len(days), len(custs), len(prods)))
    pid = {p: i for i, p in enumerate(prods["product_id"])}
    cid = {c: i for i, c in enumerate(custs["customer_id"])}
    for promo in world.promotions.itertuples():
        in_days = (days >= promo.start_date) & (days <= promo.end_date)
        if in_days.any():
            cols = slice(None) if promo.customer_id == "" else cid[promo.customer_id]
            view = discount[in_days, cols, pid[promo.product_id]]
            discount[in_days, cols, pid[promo.product_id]] = np.maximum(view, promo.discount_pct)
    lift = np.sqrt(level[:, None, :] * (1 + 4 * discount / 100))

    weekday = _WEEKDAY[days.dayofweek.to_numpy()][:, None]
    orders = rng.random((len(days), len(custs))) < custs["freq"].to_numpy() * weekday
    p_line = np.clip(prods["pop"].to_numpy() * world.affinity.T * custs["breadth"].to_numpy()[:, None]
                     * lift, 0, 0.95)
    lines = orders[:, :, None] & (rng.random(p_line.shape) < p_line)
    d, c, p = np.nonzero(lines)
    mean = custs["size"].to_numpy()[c] * prods["qscale"].to_numpy()[p] * lift[d, c, p]
    quantity = 1 + rng.poisson(np.clip(mean - 1, 0, None))
    returns = rng.random(len(d)) < 0.004
    quantity[returns] = -(1 + rng.poisson(0.5, returns.sum()))
    price = (prods["price"].to_numpy()[p] * custs["price_factor"].to_numpy()[c] * 1.03 ** years[d, 0]
             * (1 + rng.normal(0, 0.02, len(d))) * (1 - discount[d, c, p] / 100))
    return {"d": d, "c": c, "p": p, "quantity": quantity, "unit_price": np.round(price, 2)}


def _orders_frame(world: _World, days: pd.DatetimeIndex, lines: dict[str, np.ndarray],
                  order_ids: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "order_id": order_ids,
        "order_date": np.asarray(days.strftime("%Y-%m-%d"))[lines["d"]],
        "customer_id": world.customers["customer_id"].to_numpy()[lines["c"]],
        "product_id": world.products["product_id"].to_numpy()[lines["p"]],
        "quantity": lines["quantity"].astype(np.int64),
        "unit_price": lines["unit_price"],
    })


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n", float_format="%.2f", date_format="%Y-%m-%d")
    return buffer.getvalue().encode("utf-8")


def _write_if_changed(path: Path, data: bytes) -> Path:
    """Write through a temporary name (ignored by the landing sensor) and skip identical content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_bytes() == data:
        return path
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def generate_sample(landing_dir: Path, *, n_products: int = 60, n_customers: int = 20,
                    start: date = DEFAULT_START, end: date = DEFAULT_END, seed: int = 42) -> dict[str, Path]:
    """Write the four landing tables under ``landing_dir``; return table name -> file."""
    landing_dir = Path(landing_dir)
    world = _world(seed, n_products, n_customers, start, end)
    days = pd.date_range(start, end, freq="D")
    lines = _simulate(world, days, np.random.default_rng([seed, 1]))
    order_key = lines["d"] * len(world.customers) + lines["c"]
    number = np.unique(order_key, return_inverse=True)[1] + 1
    ids = np.char.add("SO-", np.char.zfill(number.astype(str), 6))
    sales = _orders_frame(world, days, lines, ids)
    return {
        "sales_orders": _write_if_changed(
            landing_dir / "sales_orders" / f"sales_orders_{start}_{end}.csv", _csv_bytes(sales)),
        "products": _write_if_changed(landing_dir / "products" / "products.csv", _csv_bytes(
            world.products[["product_id", "product_name", "brand", "category", "launch_date",
                            "discontinued_date"]])),
        "customers": _write_if_changed(landing_dir / "customers" / "customers.csv", _csv_bytes(
            world.customers[["customer_id", "customer_name", "channel", "region"]])),
        "promotions": _write_if_changed(landing_dir / "promotions" / "promotions.csv",
                                        _csv_bytes(world.promotions)),
    }


def write_new_week(landing_dir: Path, week_start: date, *, seed: int = 42, n_products: int = 60,
                   n_customers: int = 20) -> Path:
    """Order lines of the seven days from ``week_start`` (a Monday), as one more sales_orders file.

    Order ids carry the date (``SO-20260928-003``) so they never collide with the sample's ``SO-000123``.
    """
    if week_start.weekday() != 0:
        raise ValueError(f"week_start {week_start} is a {week_start:%A}; give the Monday starting the week")
    world = _world(seed, n_products, n_customers, DEFAULT_START, DEFAULT_END)
    days = pd.date_range(week_start, periods=7, freq="D")
    lines = _simulate(world, days, np.random.default_rng([seed, 2, week_start.toordinal()]))
    stamps = np.asarray(days.strftime("%Y%m%d"))[lines["d"]]
    ids = np.char.add(np.char.add("SO-", stamps.astype(str)),
                      np.char.add("-", np.char.zfill((lines["c"] + 1).astype(str), 3)))
    path = landing_dir / "sales_orders" / f"sales_orders_{days[0]:%Y-%m-%d}_{days[-1]:%Y-%m-%d}.csv"
    return _write_if_changed(Path(path), _csv_bytes(_orders_frame(world, days, lines, ids)))


def inject_defect(landing_dir: Path, kind: str, *, seed: int = 42, n_products: int = 60,
                  n_customers: int = 20) -> Path:
    """Write one defective sales_orders file of the given kind (see DEFECT_KINDS) and return its path.

    Row-level kinds hold DEFECT_GOOD_ROWS valid lines and DEFECT_BAD_ROWS bad ones (every fifth line);
    "unknown_product" lines are only rejected when the ingestion knows the product ids. Pass the sample's
    seed and sizes so that the good lines name its products and customers.
    """
    if kind not in DEFECT_KINDS:
        raise ValueError(f"unknown defect kind {kind!r}; known: {', '.join(DEFECT_KINDS)}")
    path = Path(landing_dir) / "sales_orders" / f"sales_orders_defect_{kind}.csv"
    rng = np.random.default_rng([seed, 3, DEFECT_KINDS.index(kind)])
    if kind == "empty_file":
        return _write_if_changed(path, b"")
    if kind == "not_csv":
        png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
        return _write_if_changed(path, png)
    world = _world(seed, n_products, n_customers, DEFAULT_START, DEFAULT_END)
    prods = world.products
    plain = prods[(prods["launch_date"].isna() | (prods["launch_date"] < "2023-01-01"))
                  & prods["discontinued_date"].isna()]
    pick = rng.integers(0, len(plain), DEFECT_GOOD_ROWS)
    good = pd.DataFrame({
        "order_id": [f"SO-DEFECT-{kind}-{i + 1:02d}" for i in range(DEFECT_GOOD_ROWS)],
        "order_date": [str(DEFAULT_END - timedelta(days=int(d)))
                       for d in rng.integers(0, 7, DEFECT_GOOD_ROWS)],
        "customer_id": world.customers["customer_id"].to_numpy()[
            rng.integers(0, n_customers, DEFECT_GOOD_ROWS)],
        "product_id": plain["product_id"].to_numpy()[pick],
        "quantity": rng.integers(1, 20, DEFECT_GOOD_ROWS).astype(str),
        "unit_price": [f"{v:.2f}" for v in plain["price"].to_numpy()[pick]],
    })
    if kind == "missing_column":
        return _write_if_changed(path, _csv_bytes(good.drop(columns="quantity")))
    bad = good.iloc[:DEFECT_BAD_ROWS].copy()
    if kind != "duplicate_lines":
        bad["order_id"] = [f"SO-DEFECT-{kind}-bad-{i + 1:02d}" for i in range(DEFECT_BAD_ROWS)]
    if kind == "wrong_types":
        bad["quantity"] = ["abc", "12,5kg", "?", bad["quantity"].iloc[3], bad["quantity"].iloc[4]]
        bad["order_date"] = list(bad["order_date"].iloc[:3]) + ["not-a-date", "2026-02-30"]
    elif kind == "unknown_product":
        bad["product_id"] = [f"P9{i:02d}" for i in range(DEFECT_BAD_ROWS)]
    elif kind == "negative_price":
        bad["unit_price"] = [f"-{v}" for v in bad["unit_price"]]
    elif kind == "future_dates":
        bad["order_date"] = [f"2099-0{i + 1}-15" for i in range(DEFECT_BAD_ROWS)]
    # every fifth line is bad: good rows 0-3, bad 0, good rows 4-7, bad 1, ...
    parts = []
    for i in range(DEFECT_BAD_ROWS):
        parts += [good.iloc[4 * i:4 * i + 4], bad.iloc[[i]]]
    return _write_if_changed(path, _csv_bytes(pd.concat(parts, ignore_index=True)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the cheese and dairy sample as landing CSV files.")
    parser.add_argument("--landing", type=Path, default=None,
                        help="Landing folder (default: <MLOPS_DATA_DIR>/landing).")
    parser.add_argument("--products", type=int, default=60, help="Number of products.")
    parser.add_argument("--customers", type=int, default=20, help="Number of customers.")
    parser.add_argument("--seed", type=int, default=42, help="Same seed, same files.")
    args = parser.parse_args(argv)
    landing = args.landing or DataPaths.from_env().landing
    for table, path in generate_sample(landing, n_products=args.products, n_customers=args.customers,
                                       seed=args.seed).items():
        print(f"{table}: {path}")


if __name__ == "__main__":
    main()
