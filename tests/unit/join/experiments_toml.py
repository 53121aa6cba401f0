"""The experiments both the offline and the streaming join tests judge: a candidate 5
accuracy points worse than live, one identical to live, one 30% slower."""

CANDIDATES_TOML = """
[join]
pair_ttl_s = {pair_ttl}
label_ttl_s = {label_ttl}
expire_every_s = 1
snapshot_every_s = 1

[[experiments]]
name = "worse"
model = "churn"
live_version = "v1"
candidate = "v2"
task = "binary"
primary_metric = "correct"

[[experiments]]
name = "same"
model = "churn"
live_version = "v1"
candidate = "v3"
task = "binary"
primary_metric = "correct"

[[experiments]]
name = "slow"
model = "churn"
live_version = "v1"
candidate = "v4"
task = "binary"
primary_metric = "correct"
"""
