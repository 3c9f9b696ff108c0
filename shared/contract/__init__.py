"""The public contract: CloudEvents envelope, typed event data, and the topic registry."""

from shared.contract.envelope import (
    ARCHIVE,
    Event,
    InvalidEvent,
    TimeWindow,
    check_times,
    decode,
    encode,
    from_dict,
    new_event,
    set_time_window,
)
from shared.contract.events import EVENT_TYPES
from shared.contract.topics import Topics

__all__ = [
    "ARCHIVE",
    "EVENT_TYPES",
    "Event",
    "InvalidEvent",
    "TimeWindow",
    "Topics",
    "check_times",
    "decode",
    "encode",
    "from_dict",
    "new_event",
    "set_time_window",
]
