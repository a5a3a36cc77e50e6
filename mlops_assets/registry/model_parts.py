"""The registered model as a folder of per-group parts, loaded group by group when a series is asked for.

The registry's refit fits one ChampionForecaster per model group (registry.refit); each task writes its
part here as ``<group>.pkl`` beside a small ``<group>.series.parquet`` (its series table and clipping) and
``<group>.json`` (its settings). ``assemble`` then writes the index (``index.parquet``: unique_id -> group,
with each series' champion and train_end) and ``manifest.json`` from those small files only, so the run
process that registers the model never unpickles a part, and MLflow logs the folder as an artifact.

``PartedForecaster`` answers like the ChampionForecaster fitted on every series (``ChampionForecaster.combine``
of the parts): the index answers what the request checks need (series, horizon, levels), and a part is
unpickled on the first request of one of its series and kept while it is among the ``kept_groups`` most
recently used. Lazy, not all at load time: a serving process or a batch job then holds a bounded number of
groups whatever the series count, and a request pays a part's unpickling only on a group's first use.
"""

from __future__ import annotations

import json
import os
import pickle
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlops_assets.registry.champion_model import ChampionForecaster, known_positions

INDEX = "index.parquet"
MANIFEST = "manifest.json"
# Settings every part must share to be one model (ChampionForecaster.combine checks the same ones).
CONFIG = ("frequency", "season_length", "horizon", "levels", "intervals", "clip", "combination_size",
          "last_known", "seed", "metric")
KEPT_GROUPS = 4


def _write_aside(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_part(forecaster: ChampionForecaster, folder: Path, group: str) -> Path:
    """One group's forecaster and its small description; the pickle is renamed in last, so it marks the part done."""
    folder.mkdir(parents=True, exist_ok=True)
    series = forecaster.series.assign(no_clip=lambda s: s["unique_id"].isin(forecaster._no_clip))
    series.to_parquet(folder / f"{group}.series.parquet", index=False)
    config = {key: getattr(forecaster, key) for key in CONFIG}
    _write_aside(folder / f"{group}.json", json.dumps(config, default=list).encode())
    path = folder / f"{group}.pkl"
    _write_aside(path, pickle.dumps(forecaster, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def assemble(folder: Path, groups: Sequence[str]) -> PartedForecaster:
    """Write the index and the manifest of the parts ``groups`` in ``folder``; the model they make."""
    configs = [json.loads((folder / f"{g}.json").read_text()) for g in groups]
    if not configs:
        raise ValueError("nothing to assemble: no parts")
    differing = sorted({key for c in configs[1:] for key in CONFIG if c[key] != configs[0][key]})
    if differing:
        raise ValueError(f"parts with different settings cannot make one model: {differing}")
    index = pd.concat([pd.read_parquet(folder / f"{g}.series.parquet").assign(group=g) for g in groups],
                      ignore_index=True)
    repeated = index.loc[index["unique_id"].duplicated(), "unique_id"].unique().tolist()
    if repeated:
        raise ValueError(f"series fitted in more than one part: {repeated[:10]}")
    index = index.sort_values("unique_id", kind="stable").reset_index(drop=True)
    index.to_parquet(folder / INDEX, index=False)
    manifest = {**configs[0], "clipped": not bool(index["no_clip"].any()), "groups": list(groups)}
    _write_aside(folder / MANIFEST, json.dumps(manifest).encode())
    return PartedForecaster(folder)


def single_part(forecaster: ChampionForecaster, folder: Path) -> PartedForecaster:
    """A forecaster fitted in one piece as a one-part model in ``folder``."""
    write_part(forecaster, folder, "group-00000")
    return assemble(folder, ["group-00000"])


class PartedForecaster:
    """The parts in ``folder`` as one forecaster: ``series``, ``horizon``, ``levels``, ``clipped`` and ``predict``
    as ChampionForecaster's."""

    def __init__(self, folder: Path | str, kept_groups: int = KEPT_GROUPS):
        self.folder = Path(folder)
        manifest = json.loads((self.folder / MANIFEST).read_text())
        self.horizon = int(manifest["horizon"])
        self.levels = tuple(manifest["levels"])
        self.frequency = manifest["frequency"]
        self.clipped = bool(manifest["clipped"])
        self.groups = list(manifest["groups"])
        self.kept_groups = kept_groups
        self._index = pd.read_parquet(self.folder / INDEX)
        self._group_of = pd.Series(self._index["group"].to_numpy(), index=pd.Index(self._index["unique_id"]))
        self._loaded: OrderedDict[str, ChampionForecaster] = OrderedDict()

    def __getstate__(self) -> dict:
        # Pickled with the pyfunc wrapper or sent to a worker: the folder travels, not the loaded parts.
        return {**self.__dict__, "_loaded": OrderedDict()}

    @property
    def series(self) -> pd.DataFrame:
        """unique_id, model, fitted_model, train_end (and behind), as ChampionForecaster.series."""
        columns = ["unique_id", "model", "fitted_model", "train_end", "behind"]
        return self._index[[c for c in columns if c in self._index.columns]].copy()

    def group_series(self) -> dict[str, list[str]]:
        """Each group's series, sorted: what a batch job scores one group at a time."""
        return {g: sorted(ids) for g, ids in self._index.groupby("group", sort=True)["unique_id"]}

    @property
    def loaded_groups(self) -> list[str]:
        return list(self._loaded)

    def part(self, group: str) -> ChampionForecaster:
        """The group's fitted forecaster, unpickled on first use; the least recently used beyond kept_groups
        is let go."""
        if group in self._loaded:
            self._loaded.move_to_end(group)
            return self._loaded[group]
        while len(self._loaded) >= max(self.kept_groups, 1):
            self._loaded.popitem(last=False)
        forecaster = pickle.loads((self.folder / f"{group}.pkl").read_bytes())
        self._loaded[group] = forecaster
        return forecaster

    def predict(
        self,
        unique_ids: Sequence[str] | None = None,
        h: int | None = None,
        levels: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """ChampionForecaster.predict over the parts holding the series, one part at a time."""
        requested = self._requested(unique_ids)
        if not requested:
            return self.part(self.groups[0]).predict([], h=h, levels=levels)
        by_group = self._group_of.reindex(requested)
        out = [self.part(g).predict(ids.index.tolist(), h=h, levels=levels)
               for g, ids in by_group.groupby(by_group, sort=True)]
        out = out[0] if len(out) == 1 else pd.concat(out, ignore_index=True)
        return out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)

    def _requested(self, unique_ids: Sequence[str] | None) -> list[str]:
        if unique_ids is None:
            return self._group_of.index.tolist()
        return self._group_of.index[known_positions(self._group_of.index, unique_ids)].tolist()
