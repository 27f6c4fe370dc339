"""`tandem rewrite WORKFLOW`: the model writes the workflow's script.py from its prompt,
tools, virtual files and recorded runs; every recorded run is then replayed through the
candidate, and one repair turn (`--repairs N`) feeds the model the diffs. The candidate is
always left beside the workflow as script.candidate.py (with --branch, out of the work
tree: the state folder's rewrite/WORKFLOW.script.candidate.py); `--write` makes it
script.py, switches workflow.yaml to it and ships the runs as fixtures with a test, when every run
agrees (or `--accept-diffs`). `--branch NAME` commits those files on a new git branch
instead, leaving the work tree and the current branch as they are; `--pr` pushes it and
opens a pull request through the `github` plugin, the evidence in its description
(`tandem.rewrite.ship`, `tandem.rewrite.pull_request`). `--brief [FILE]` writes the
material as a markdown brief for a person or a coding assistant instead, and asks no
model. `--model-replies FILE` answers for the model, offline (`read_answers` says the
format). `--json` prints the outcome as one JSON document on stdout, the table going to
stderr.

Exit codes: 0 every run agrees (or a brief was written); 1 a run disagrees, or the model
gave no usable script, or the pull request was not opened; 2 usage: no such workflow, no
recorded runs, no API key, a repository --branch cannot commit to.

Everything heavy is imported in `cmd_rewrite`, and nothing from `.main` at import time,
so `main` may import this module at its top.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tandem.client import ControlClient
    from tandem.config import ProjectConfig
    from tandem.rewrite import Conversation, Material, Verdict
    from tandem.rewrite.ship import Target
    from tandem.workflows import Workflow

    from .model_replies import ScriptedModel

MAX_REPAIRS = 5


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rewrite = commands.add_parser(
        "rewrite",
        help="have the model write the workflow's script.py; replay its runs to check it",
    )
    rewrite.add_argument("workflow", metavar="WORKFLOW")
    rewrite.add_argument(
        "--sample", type=int, default=5, metavar="N", help="recorded runs shown to the model"
    )
    rewrite.add_argument(
        "--last",
        type=int,
        default=0,
        metavar="N",
        help="validate against the last N recorded runs and every flagged one (default: all)",
    )
    rewrite.add_argument(
        "--repairs",
        type=int,
        default=1,
        metavar="N",
        help=f"turns that send the model the diffs when a run disagrees (0-{MAX_REPAIRS})",
    )
    rewrite.add_argument(
        "--write",
        action="store_true",
        help="when every run agrees: write script.py, switch workflow.yaml, add fixtures",
    )
    rewrite.add_argument(
        "--accept-diffs",
        action="store_true",
        help="with --write or --branch: write despite disagreements",
    )
    rewrite.add_argument(
        "--branch",
        metavar="NAME",
        help="when every run agrees: commit what --write writes on a new branch NAME, off"
        " HEAD, leaving the work tree and the current branch as they are",
    )
    rewrite.add_argument(
        "--pr",
        action="store_true",
        help="with --branch: push it and open a pull request with the evidence (github plugin)",
    )
    rewrite.add_argument(
        "--repo",
        metavar="OWNER/NAME",
        help="with --pr: the GitHub repository (default: from the remote's URL)",
    )
    rewrite.add_argument("--draft", action="store_true", help="with --pr: open it as a draft")
    rewrite.add_argument(
        "--brief",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="write the material as a markdown brief instead (default WORKFLOW/REWRITE.md)",
    )
    rewrite.add_argument(
        "--model-replies",
        metavar="FILE",
        help="the model's answer, offline (no key): its text with a ```python block, a .py"
        " file as the script itself, or a YAML/JSON list of turns (the script, then repairs)",
    )
    rewrite.add_argument("--json", action="store_true", help="print the outcome as JSON")
    rewrite.add_argument("--model", help="the model to ask (default: the workflow's model)")
    rewrite.add_argument(
        "--max-tokens", type=int, default=16_000, metavar="N", help="the answer's token limit"
    )


def cmd_rewrite(config: ProjectConfig, args: argparse.Namespace) -> int:
    from .common import UsageError

    _check(args, UsageError)
    folder = config.workflows_dir / args.workflow
    if not (folder / "workflow.yaml").is_file():
        raise UsageError(f"no workflow {args.workflow!r} in {config.workflows_dir}")
    target = _target(args, folder, config.state_dir, UsageError)
    scripted = _scripted(args.model_replies)
    if scripted is not None:
        _say(scripted.banner)
        # A repair turn needs an answer of its own: FILE's answers after the first.
        args.repairs = min(args.repairs, len(scripted.replies) - 1)
    result: dict[str, Any] = {"workflow": args.workflow}
    # The answers are served as the model's, on 127.0.0.1: the same client, the same path.
    with scripted.serve() if scripted is not None else contextlib.nullcontext():
        code = _cmd_rewrite(config, args, folder, result, target)
    for warning in scripted.warnings() if scripted is not None else []:
        print(f"tandem: warning: model replies: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    return code


def _scripted(value: str | None) -> ScriptedModel | None:
    if value is None:
        return None
    from .model_replies import ScriptedModel, read_answers

    return ScriptedModel(value, read_answers(Path(value)))


def _target(
    args: argparse.Namespace, folder: Path, state_dir: Path, usage: type[Exception]
) -> Target | None:
    """With --branch: the repository checked (and the remote, with --pr) before the model
    is asked."""
    if args.branch is None:
        return None
    from tandem.rewrite.errors import BranchError
    from tandem.rewrite.ship import prepare

    try:
        return prepare(folder, args.branch, pr=args.pr, repo=args.repo, state_dir=state_dir)
    except BranchError as error:
        raise usage(str(error)) from None


def _cmd_rewrite(
    config: ProjectConfig,
    args: argparse.Namespace,
    folder: Path,
    result: dict[str, Any],
    target: Target | None,
) -> int:
    import grpc

    from tandem.llm.api import KEY_VARIABLE, ModelApi
    from tandem.rewrite import Conversation, RewriteError, brief_markdown, gather
    from tandem.rewrite.material import load
    from tandem.workflows.loader import WorkflowError

    from .common import EXIT_OK, EXIT_RUN_FAILED, UsageError, control, rpc_error

    api = ModelApi.from_env()
    if args.brief is None and not api.configured:
        raise UsageError(
            f"{KEY_VARIABLE} is not set: the rewrite asks the model (set it, and"
            " ANTHROPIC_BASE_URL for a gateway), answer for it offline with --model-replies"
            f" FILE, or write a brief for a person or a coding assistant with"
            f" `tandem rewrite {args.workflow} --brief`"
        )
    with control(config) as client:
        try:
            try:
                workflow = load(client, folder)
            except WorkflowError as error:
                raise UsageError(f"workflow {args.workflow} does not load:\n{error}") from None
            if not workflow.prompt_text:
                raise UsageError(f"workflow {args.workflow} has no prompt to rewrite from")
            material = gather(client, workflow, args.sample)
            if args.brief is not None:
                brief = Path(args.brief) if args.brief else folder / "REWRITE.md"
                brief.write_text(brief_markdown(material), encoding="utf-8")
                print(f"wrote {brief}", file=_out(args))
                result["brief"] = str(brief)
                return EXIT_OK
            if not material.recorded:
                raise UsageError(
                    f"workflow {args.workflow} has no recorded live runs or MCP sessions to"
                    " validate a script"
                    f" against: run it first (`tandem run {args.workflow}`), or flag runs"
                )
            conversation = Conversation(api, args.model or material.model, args.max_tokens)
            result["model"] = conversation.model
            return _rewrite(config, args, client, workflow, material, conversation, result, target)
        except RewriteError as error:
            print(f"tandem: {error}", file=sys.stderr)
            result["error"] = str(error)
            return EXIT_RUN_FAILED
        except grpc.RpcError as error:
            raise rpc_error(error) from None


def _check(args: argparse.Namespace, usage: type[Exception]) -> None:
    if args.sample < 1:
        raise usage("--sample counts from 1")
    if args.last < 0:
        raise usage("--last is a count of runs")
    if not 0 <= args.repairs <= MAX_REPAIRS:
        raise usage(f"--repairs is from 0 to {MAX_REPAIRS}")
    if args.max_tokens < 1:
        raise usage("--max-tokens counts from 1")
    if args.brief is not None and (args.write or args.accept_diffs or args.branch):
        raise usage("--brief asks no model and writes no script: leave out --write/--branch")
    if args.branch is not None and args.write:
        raise usage("--branch commits to a branch instead of writing the work tree: one of them")
    if args.accept_diffs and not (args.write or args.branch):
        raise usage("--accept-diffs goes with --write or --branch")
    if args.pr and args.branch is None:
        raise usage("--pr opens a pull request of the branch --branch NAME makes: give it")
    if (args.repo is not None or args.draft) and not args.pr:
        raise usage("--repo and --draft go with --pr")
    if args.brief is not None and args.model_replies is not None:
        raise usage("--brief asks no model: leave out --model-replies")


def _rewrite(
    config: ProjectConfig,
    args: argparse.Namespace,
    client: ControlClient,
    workflow: Workflow,
    material: Material,
    conversation: Conversation,
    result: dict[str, Any],
    target: Target | None = None,
) -> int:
    from tandem.rewrite import (
        RewriteError,
        material_markdown,
        table,
        validate,
        write_accepted,
        write_candidate,
    )
    from tandem.rewrite.material import choose_for_validation

    from .common import EXIT_OK, EXIT_RUN_FAILED

    runs = choose_for_validation(material.recorded, args.last)
    _say(
        f"asking {conversation.model} for {workflow.name}'s script.py"
        f" ({len(material.samples)} sample run(s) of {len(material.recorded)})"
    )
    script = conversation.write(material_markdown(material))
    verdicts: list[Verdict] = []
    for turn in range(args.repairs + 1):
        candidate = write_candidate(workflow, config.state_dir, script)
        _say(f"replaying {len(runs)} recorded run(s) through {candidate}")
        verdicts = validate(client, runs, candidate)
        result.update(repairs=turn, runs=[v.to_json() for v in verdicts])
        for line in table(verdicts):
            print(line, file=_out(args), flush=True)
        if all(v.agree for v in verdicts) or turn == args.repairs:
            break
        disagreeing = [v for v in verdicts if not v.agree]
        _say(f"repair {turn + 1} of {args.repairs}: the diffs of {len(disagreeing)} run(s)")
        try:
            script = conversation.repair([v.report() for v in disagreeing])
        except RewriteError:
            _leave_candidate(workflow, config.state_dir, script, target, args)  # the last run
            raise
    agreed = all(v.agree for v in verdicts)
    result.update(agreed=agreed, written=[])
    if target is None or not (agreed or args.accept_diffs):  # a branch leaves no candidate
        candidate_file = _leave_candidate(workflow, config.state_dir, script, target, args)
        result["candidate"] = str(candidate_file)
    if not args.write and target is None:
        return EXIT_OK if agreed else EXIT_RUN_FAILED
    if not agreed and not args.accept_diffs:
        differ = sum(1 for v in verdicts if not v.agree)
        held = f"not committing branch {target.branch}" if target else "not writing script.py"
        result["error"] = (
            f"{held}: {differ} of {len(verdicts)} recorded run(s)"
            " disagree with the candidate (see above); fix the script, flag the runs that"
            " were wrong (`tandem runs flag RUN_ID WHY --call N`), or give --accept-diffs"
        )
        print(f"tandem: {result['error']}", file=sys.stderr)
        return EXIT_RUN_FAILED
    fixtures = [client.export(v.run.id) for v in verdicts if v.agree]
    if target is not None:
        from .rewrite_branch import ship

        ship(config, args, client, workflow.folder, script, fixtures, verdicts, target, result)
    else:
        for path in write_accepted(workflow.folder, script, fixtures):
            print(f"wrote {path}", file=_out(args))
            result["written"].append(str(path))
    left_out = [v.run.id for v in verdicts if not v.agree]
    if left_out:
        print(
            f"accepted with diffs: no fixture for {', '.join(left_out)}"
            " (flag the runs that were wrong, then export them)",
            file=sys.stderr,
        )
    return EXIT_OK if agreed else EXIT_RUN_FAILED


def _leave_candidate(
    workflow: Workflow,
    state_dir: Path,
    script: str,
    target: Target | None,
    args: argparse.Namespace,
) -> Path:
    """Leave the candidate where a person finds it: beside the workflow, or with --branch
    under the state folder, never in the work tree (a retry would refuse it as dirty)."""
    from tandem.rewrite import write_candidate_file
    from tandem.rewrite.write import CANDIDATE

    if target is None:
        path = write_candidate_file(workflow.folder, script)
    else:
        path = state_dir / "rewrite" / f"{workflow.name}.{CANDIDATE}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script, encoding="utf-8")
    print(f"candidate: {path}", file=_out(args))
    return path


def _out(args: argparse.Namespace) -> TextIO:
    """Where the table and the files written go: stderr when stdout is for --json."""
    return sys.stderr if args.json else sys.stdout


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
