"""What model tokens cost: a table of list prices in USD per million tokens, per model.

The defaults are Anthropic's published list prices for the Claude API (standard tier, no
batch discount, global inference), as found on platform.claude.com in the model overview
pages and the pricing page. `cache_write` is the 5-minute cache write, the only kind the
LLM loop asks for (`cache_control: {"type": "ephemeral"}`, no ttl). A project may override
or extend the table in tandem.yaml:

    prices:
      claude-sonnet-5-5: {input: 2.0, output: 10.0, cache_write: 2.5, cache_read: 0.2}

A model missing from the table has no price: its cost is unknown, never guessed from a
similar name. The one leniency is a dated snapshot id (`claude-haiku-4-5-20251001`),
priced as its undated alias when only that is listed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tandem_sdk.errors import DefinitionError

from tandem.config import CONFIG_FILE

PRICE_KEYS = ("input", "output", "cache_write", "cache_read")
_DATED = re.compile(r"^(?P<alias>.+)-\d{8}$")


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def cost(self, usage: Mapping[str, int]) -> float:
        """The USD cost of one usage record (the run store's token keys)."""
        per_token = (
            usage.get("input_tokens", 0) * self.input
            + usage.get("output_tokens", 0) * self.output
            + usage.get("cache_write_tokens", 0) * self.cache_write
            + usage.get("cache_read_tokens", 0) * self.cache_read
        )
        return per_token / 1_000_000

    def to_json(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in PRICE_KEYS}


def _price(input: float, output: float, cache_write: float, cache_read: float) -> Price:
    return Price(input, output, cache_write, cache_read)


# Checked against platform.claude.com (model overview pages and /about-claude/pricing).
# Sonnet 5.5: the official overview lists cache reads at $0.20/MTok; two third-party price
# trackers (claudit v1.9.2, PromptFuel v1.0.23) report a cut to $0.10 from 2026-10-07 that
# no official page seen here confirms, so the table keeps $0.20. Override it in tandem.yaml
# if your invoice says otherwise. Haiku 5.5 is left out on purpose: its price depends on
# each request's prompt length (two bands around 100k tokens), which a run's summed usage
# cannot tell, so its cost shows as unknown unless tandem.yaml prices it.
DEFAULT_PRICES: dict[str, Price] = {
    "claude-sonnet-5-5": _price(2.0, 10.0, 2.5, 0.2),
    "claude-sonnet-5": _price(2.0, 10.0, 2.5, 0.2),
    "claude-sonnet-4-6": _price(3.0, 15.0, 3.75, 0.3),
    "claude-sonnet-4-5": _price(3.0, 15.0, 3.75, 0.3),
    "claude-sonnet-4-0": _price(3.0, 15.0, 3.75, 0.3),
    "claude-sonnet-4": _price(3.0, 15.0, 3.75, 0.3),
    "claude-opus-5-5": _price(4.0, 20.0, 5.0, 0.2),
    "claude-opus-5": _price(5.0, 25.0, 6.25, 0.5),
    "claude-opus-4-8": _price(5.0, 25.0, 6.25, 0.5),
    "claude-opus-4-7": _price(5.0, 25.0, 6.25, 0.5),
    "claude-opus-4-6": _price(5.0, 25.0, 6.25, 0.5),
    "claude-opus-4-5": _price(5.0, 25.0, 6.25, 0.5),
    "claude-opus-4-1": _price(15.0, 75.0, 18.75, 1.5),
    "claude-opus-4-0": _price(15.0, 75.0, 18.75, 1.5),
    "claude-opus-4": _price(15.0, 75.0, 18.75, 1.5),
    "claude-haiku-4-5": _price(1.0, 5.0, 1.25, 0.1),
}


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price]

    def price(self, model: str) -> Price | None:
        """The model's price; a dated snapshot id falls back to its alias, nothing else."""
        if model in self.prices:
            return self.prices[model]
        dated = _DATED.match(model)
        return self.prices.get(dated["alias"]) if dated else None

    def to_json(self) -> dict[str, dict[str, float]]:
        return {model: price.to_json() for model, price in sorted(self.prices.items())}


def default_prices() -> PriceTable:
    return PriceTable(dict(DEFAULT_PRICES))


def load_prices(root: Path) -> PriceTable:
    """The default table with tandem.yaml's `prices:` laid over it, model by model."""
    path = root / CONFIG_FILE
    if not path.is_file():
        return default_prices()
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DefinitionError(str(path), f"not valid YAML: {error}") from error
    section = settings.get("prices") if isinstance(settings, dict) else None
    return PriceTable({**DEFAULT_PRICES, **parse_prices(path, section)})


def parse_prices(path: Path, section: Any) -> dict[str, Price]:
    """`prices: {MODEL: {input, output, cache_write, cache_read}}`, every key required."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise DefinitionError(
            str(path),
            "prices: expected a mapping of model -> {input, output, cache_write,"
            " cache_read} in USD per million tokens",
        )
    parsed: dict[str, Price] = {}
    for model, entry in section.items():
        where = f"prices.{model}"
        if not isinstance(entry, dict):
            raise DefinitionError(
                str(path), f"{where}: expected {{{', '.join(PRICE_KEYS)}}} in USD per MTok"
            )
        missing = [key for key in PRICE_KEYS if key not in entry]
        unknown = sorted(set(map(str, entry)) - set(PRICE_KEYS))
        if missing or unknown:
            problems = [f"missing {', '.join(missing)}"] if missing else []
            problems += [f"unknown {', '.join(unknown)}"] if unknown else []
            raise DefinitionError(
                str(path), f"{where}: {'; '.join(problems)} (needs {', '.join(PRICE_KEYS)})"
            )
        values = {}
        for key in PRICE_KEYS:
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DefinitionError(str(path), f"{where}.{key}: expected a number, got {value!r}")
            if value < 0 or not math.isfinite(value):
                raise DefinitionError(
                    str(path), f"{where}.{key}: expected a price >= 0, got {value!r}"
                )
            values[key] = float(value)
        parsed[str(model)] = Price(**values)
    return parsed
