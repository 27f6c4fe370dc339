"""The ledger: per workflow, coordinator and version, what runs did and cost, and how a
migration from prompt to script changed it (`tandem stats`)."""

from .figures import (
    Change,
    Group,
    Ledger,
    Migration,
    ShapePlans,
    compute,
    models_from_events,
    models_from_versions,
    percentile,
    tool_plan,
    trigger_shape,
)
from .prices import DEFAULT_PRICES, Price, PriceTable, default_prices, load_prices

__all__ = [
    "DEFAULT_PRICES",
    "Change",
    "Group",
    "Ledger",
    "Migration",
    "Price",
    "PriceTable",
    "ShapePlans",
    "compute",
    "default_prices",
    "load_prices",
    "models_from_events",
    "models_from_versions",
    "percentile",
    "tool_plan",
    "trigger_shape",
]
