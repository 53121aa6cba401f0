"""shadow-eval: streaming shadow evaluation of ML models on Kafka."""

__version__ = "0.1.0"
