"""The experiments file: a broken file is a clear error naming the line or the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.join.experiments import ConfigError, ExperimentsFile, load

BASE = '[[experiments]]\nname = "x"\nmodel = "m"\nlive_version = "v1"\n'

VALID = """
[join]
pair_ttl_s = 30
label_ttl_s = 3600
store = "rocksdb://"

[[experiments]]
name = "churn"
model = "churn"
live_version = "v1"
candidates = ["v2", "v3"]
task = "binary"
positive_class = 1
primary_metric = "correct"
"""


def test_a_valid_file_expands_candidates_into_experiments() -> None:
    parsed = ExperimentsFile.parse(VALID)
    assert [e.name for e in parsed.experiments] == ["churn/v2", "churn/v3"]
    assert parsed.join.pair_ttl_s == 30.0 and parsed.join.store == "rocksdb://"
    assert parsed.experiments[0].positive_class == "1"
    assert parsed.experiments[0].rules.name == "churn/v2"
    assert parsed.for_model("churn") == parsed.experiments
    assert parsed.get("churn/v3").candidate == "v3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[experiments]]\nname = "x"\nmodel "m"\n', "line 3"),
        ("[join]\npair_ttl_s = 1\n", "at least one [[experiments]]"),
        ('[join]\nttl = 1\n[[experiments]]\nname="x"', "[join]: unknown keys ['ttl']"),
        ('[join]\npair_ttl_s = 0\n[[experiments]]\nname="x"', "pair_ttl_s: must be a number > 0"),
        ('[join]\nstore = "redis://"\n[[experiments]]\nname="x"', "store: must start with"),
        (
            '[join]\nstore = "rocksdb://?cache_mb=lots"\n[[experiments]]\nname="x"',
            "cache_mb must be a whole number of MiB",
        ),
        ('[[experiments]]\nmodel = "m"', "experiments[0].name: required"),
        ('[[experiments]]\nname = "x"\nlive_version = "v1"', "experiments[0] ('x').model"),
        (
            BASE + 'candidate = "v2"\ntask = "ranking"',
            "('x').task: must be one of regression, binary, multiclass",
        ),
        (
            '[[experiments]]\nname = "x"\nmodel = "m"\nlive_version = "v1"\ncandidate = "v1"',
            "is the live version",
        ),
        (
            BASE + 'candidate = "v2"\nalpha = 1.5',
            "alpha: must be in (0, 1)",
        ),
        (
            '[[experiments]]\nname = "x"\nmodel = "m"\nlive_version = "v1"\ncandidate = "v2"\n'
            '[[experiments.rules]]\nname = "r"\nmetric = "nonsense"',
            "metric",
        ),
        (
            '[[experiments]]\nname = "x"\nmodel = "m"\nlive_version = "v1"\ncandidate = "v2"\n'
            '[[experiments]]\nname = "x"\nmodel = "m"\nlive_version = "v1"\ncandidate = "v3"',
            "names must be unique",
        ),
        (
            '[[experiments]]\nname = "x"\nmodel = "m"\nlive_version = "v1"\ncandidate = "v2"\n'
            '[[experiments]]\nname = "y"\nmodel = "m"\nlive_version = "v0"\ncandidate = "v3"',
            "several live versions",
        ),
    ],
)
def test_broken_files_name_the_line_or_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ExperimentsFile.parse(text, "exp.toml")
    assert str(caught.value).startswith("exp.toml")
    assert message in str(caught.value)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read experiments file .*nope\.toml"):
        load(tmp_path / "nope.toml")
    path = tmp_path / "ok.toml"
    path.write_text(VALID)
    assert len(load(path).experiments) == 2
