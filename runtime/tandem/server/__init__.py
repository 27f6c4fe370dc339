"""The gRPC face of the host: ToolHost for coordinators, Control for operators."""
