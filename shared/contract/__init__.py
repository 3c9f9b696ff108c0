"""The public contract: CloudEvents envelope, typed event data, and the topic registry."""

from shared.contract.envelope import Event, InvalidEvent, decode, encode, from_dict, new_event
from shared.contract.events import EVENT_TYPES
from shared.contract.topics import Topics

__all__ = ["EVENT_TYPES", "Event", "InvalidEvent", "Topics", "decode", "encode", "from_dict", "new_event"]
