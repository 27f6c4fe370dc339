"""Recorded runs put to work: replaying them through the current workflow (the tool-plan
diff is the product) and exporting them as fixtures that script tests replay offline."""

from .fixtures import fixture_of, write_fixture
from .recording import (
    RecordedCall,
    RecordedSubagent,
    Recording,
    attempted_plan,
    subagent_key,
    took_a_step,
)

__all__ = [
    "RecordedCall",
    "RecordedSubagent",
    "Recording",
    "attempted_plan",
    "fixture_of",
    "subagent_key",
    "took_a_step",
    "write_fixture",
]
