"""`tandem approve RUN_ID [CALL]` and `tandem deny RUN_ID [CALL] REASON`: answer the tool
calls a run holds for a person's approval (workflow.yaml `approvals`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, UsageError, control_for_run, rpc_error

if TYPE_CHECKING:
    from tandem.config import ProjectConfig


def add_parser(commands: Any) -> None:
    approve = commands.add_parser("approve", help="let a call waiting for approval run")
    approve.add_argument("run_id")
    approve.add_argument(
        "call", nargs="?", type=int, default=0, help="its number in `runs show` (default: all)"
    )
    deny = commands.add_parser("deny", help="refuse a call waiting for approval, saying why")
    deny.add_argument("run_id")
    deny.add_argument(
        "call", nargs="?", default="", help="its number in `runs show` (default: all)"
    )
    deny.add_argument("reason", nargs="?", default="")


def cmd_decide(config: ProjectConfig, args: argparse.Namespace) -> int:
    import grpc
    from tandem_sdk._pb import control_pb2

    from .render import numbered_calls

    approve = args.command == "approve"
    call, reason = (args.call, "") if approve else _deny_arguments(args)
    with control_for_run(config, args.run_id) as client:
        try:
            reply = client.stub.Decide(
                control_pb2.DecideRequest(
                    run_id=args.run_id, call=call, approve=approve, reason=reason
                )
            )
        except grpc.RpcError as error:
            raise rpc_error(error) from None
        # Name what was decided: without CALL, a person may not know what they let run.
        named = numbered_calls(client.run(args.run_id)) if reply.calls else {}
    verb = "approved" if approve else "denied"
    numbered = [str(n) for n in reply.calls if n]
    held = [f"call(s) {', '.join(numbered)}"] if numbered else []
    if len(numbered) < len(reply.calls):
        held.append(f"{len(reply.calls) - len(numbered)} subagent call(s)")
    print(f"run {args.run_id}: {verb} {' and '.join(held)}")
    for number in reply.calls:
        print(f"  call {number}  {named.get(number, '')}" if number else "  a subagent's call")
    return EXIT_OK


def _deny_arguments(args: argparse.Namespace) -> tuple[int, str]:
    """`deny RUN CALL REASON`, or `deny RUN REASON` for every waiting call."""
    if args.call.isdigit():
        call, reason = int(args.call), args.reason
    else:
        call, reason = 0, " ".join(part for part in (args.call, args.reason) if part)
    if not reason:
        raise UsageError("say why: tandem deny RUN_ID [CALL] REASON")
    return call, reason
