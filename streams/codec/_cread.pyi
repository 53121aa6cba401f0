from collections.abc import Callable
from typing import Any

def configure(
    *,
    prediction: tuple[type[Any], tuple[Any, ...]],
    ground_truth: tuple[type[Any], tuple[Any, ...]],
    join_event: tuple[type[Any], tuple[Any, ...]],
    join_event_batch: tuple[type[Any], tuple[Any, ...]],
    model_input: tuple[type[Any], tuple[Any, ...]],
    roles: tuple[Any, Any],
    kinds: tuple[Any, Any, Any],
    names_of: Callable[[bytes], list[str]],
    json_loads: Callable[[str], Any],
    separator: str,
    give_up_errors: tuple[type[BaseException], ...],
) -> None: ...
def decode_model_input(data: bytes) -> Any: ...
def decode_prediction(data: bytes) -> Any: ...
def decode_ground_truth(data: bytes) -> Any: ...
def decode_join_event(data: bytes) -> Any: ...
def decode_join_event_batch(data: bytes) -> Any: ...
