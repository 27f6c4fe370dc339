"""Wire-level constants shared by the SDK and the host."""

PROTOCOL_VERSION = 1
PROTOCOL_HEADER = "tandem-protocol"
# Messages larger than this are refused on both sides (RESOURCE_EXHAUSTED).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

GRPC_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
