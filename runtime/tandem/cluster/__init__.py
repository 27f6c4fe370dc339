"""Several hosts sharing one run store: the daemons registry and heartbeat, runs owned by one
daemon and fenced by attempt, the shared queue and its claims, takeover, and commands
between daemons."""
