"""A process that reads stdin and never writes a byte: it never answers the handshake."""

import sys

for _line in sys.stdin:
    pass
