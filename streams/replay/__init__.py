"""Offline backtests: the streaming join and statistics core over logged traffic.

:mod:`streams.replay.traffic` reads and writes traffic logs -- JSON Lines (one record per
line with a ``"type"``: ``"prediction"`` or ``"ground_truth"``) and Avro object container
files (our Prediction / GroundTruth schemas, one record type per file).
:func:`replay` runs :class:`streams.join.offline.OfflineJoin` over them in event time and
returns the same :class:`streams.report.RunResult` the streaming demo collects.
"""

from streams.replay.run import replay
from streams.replay.traffic import (
    TrafficError,
    TrafficWriter,
    read_traffic,
    write_avro,
    write_jsonl,
)

__all__ = ["TrafficError", "TrafficWriter", "read_traffic", "replay", "write_avro", "write_jsonl"]
