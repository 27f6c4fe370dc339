"""The zygote: a fork server with the runner's imports done, so a script run starts in a
few milliseconds instead of the ~100 ms an interpreter takes to import gRPC.

Kept apart from `tandem.isolation` on purpose: the zygote process imports only this
package, the standard library and the SDK, so what every run inherits stays small and
holds nothing of the daemon's.
"""
