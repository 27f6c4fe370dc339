"""Wire-level constants shared by the SDK and the host."""

import os
import struct

PROTOCOL_VERSION = 1
PROTOCOL_HEADER = "tandem-protocol"
# A call's deadline until the client knows its run's own time limit (from GetRun): no call
# waits forever, whatever fails on the way.
DEFAULT_CALL_TIMEOUT_S = 60.0
# Messages larger than this are refused on both sides (RESOURCE_EXHAUSTED). Raise it with
# TANDEM_MAX_MESSAGE_BYTES, in the daemon's environment and the client's alike.
MAX_MESSAGE_BYTES = int(os.environ.get("TANDEM_MAX_MESSAGE_BYTES", 4 * 1024 * 1024))

GRPC_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
# The host's subagent marks its own tool calls with its id, so a trace (and a tool plan)
# tells them from the run's own. The host honours only ids of subagents it is running.
SUBAGENT_HEADER = "tandem-subagent"
# The host<->plugin link (proto/tandem/v1/plugin.proto): each message is one frame, this
# header (the message's length, 4 bytes big-endian) and then the serialized message.
FRAME_HEADER = struct.Struct(">I")
