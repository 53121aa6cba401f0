from collections.abc import Callable
from typing import Any

def configure(
    prediction: type[Any],
    prediction_fields: tuple[Any, ...],
    ground_truth: type[Any],
    ground_truth_fields: tuple[Any, ...],
    join_event: type[Any],
    join_event_fields: tuple[Any, ...],
    join_event_batch: type[Any],
    join_event_batch_fields: tuple[Any, ...],
    roles: tuple[Any, Any],
    kinds: tuple[Any, Any, Any],
    read_model_input: Callable[..., tuple[Any, int]],
    give_up_errors: tuple[type[BaseException], ...],
) -> None: ...
def decode_prediction(data: bytes) -> Any: ...
def decode_ground_truth(data: bytes) -> Any: ...
def decode_join_event(data: bytes) -> Any: ...
def decode_join_event_batch(data: bytes) -> Any: ...
