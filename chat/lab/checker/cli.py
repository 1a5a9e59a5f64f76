"""The ``check`` command of ``python -m chat`` (an entry point: it prints; the checker itself only logs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  python -m chat check 127.0.0.1:8000                      a server that takes the name as its first line
  python -m chat check --name '{name}' -- python a_server.py
                                                           start it, and also check memory, threads, Ctrl+C
  python -m chat check --prompt --name '{name}' --message '{name}: {text}\\n' 127.0.0.1:9090
                                                           a server that asks for the name, and whose
                                                           clients write the sender's name themselves
In --name and --message, \\n is a newline.  The exit code is 0 only if no check failed.
"""


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "check", help="grade a chat server from the outside: a scorecard of PASS / WARN / FAIL",
        description="Connect simulated users to a chat server, try everything the textbook design gets wrong, "
                    "and print a scorecard.  Give HOST:PORT for a running server, or -- COMMAND to have it started "
                    "(then {port} in COMMAND is replaced by a free port, or the port is found out).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", metavar="HOST:PORT", help="a server that is already running")
    parser.add_argument("--name", default="{name}\\n", metavar="TEMPLATE",
                        help="what a user sends to give its name (default '{name}\\n': the first line)")
    parser.add_argument("--message", default="{text}\\n", metavar="TEMPLATE",
                        help="what a user sends for one message; {name} and {text} (default '{text}\\n')")
    parser.add_argument("--prompt", action="store_true",
                        help="wait for the server's first bytes (a prompt) before sending the name")
    parser.add_argument("--settle", type=float, default=0.3, metavar="SECONDS",
                        help="after the name, how long to wait for an answer before going on (default 0.3)")
    parser.add_argument("--port", type=int, default=None, help="with -- COMMAND: the port it listens on")
    parser.add_argument("--json", metavar="FILE", help="also write the scorecard as JSON ('-' for stdout)")
    parser.add_argument("--only", metavar="CHECKS", help="run only these checks, by id, comma-separated "
                                                         "(ids: the scorecard's JSON; for a running server only)")
    parser.set_defaults(run=run, command=[])


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """``check [options] -- COMMAND...``: the options, and the command after the first ``--``."""
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def run(args: argparse.Namespace) -> int:
    from chat.lab.checker import Dialect, check_command, check_server
    from chat.lab.checker.dialect import unescape

    try:
        dialect = Dialect(unescape(args.name), unescape(args.message), args.prompt, args.settle)
    except (ValueError, KeyError, IndexError) as exc:
        print(f"python -m chat check: bad --name or --message: {exc}", file=sys.stderr)
        return 2
    if bool(args.target) == bool(args.command):
        print("python -m chat check: give either HOST:PORT or -- COMMAND (see --help)", file=sys.stderr)
        return 2

    def progress(title: str) -> None:
        print(f"  checking: {title} ...", file=sys.stderr, flush=True)

    if args.command and args.only:
        print("python -m chat check: --only is for a running server (HOST:PORT)", file=sys.stderr)
        return 2
    if args.command:
        try:
            card = check_command(args.command, dialect, port=args.port, progress=progress)
        except (RuntimeError, OSError) as exc:
            print(f"python -m chat check: {exc}", file=sys.stderr)
            return 2
    else:
        host, _, port = args.target.rpartition(":")
        if not host or not port.isdigit():
            print(f"python -m chat check: {args.target!r} is not HOST:PORT", file=sys.stderr)
            return 2
        only = [check.strip() for check in args.only.split(",")] if args.only else None
        try:
            card = check_server((host.strip("[]"), int(port)), dialect, progress=progress, only=only)
        except ValueError as exc:
            print(f"python -m chat check: {exc}", file=sys.stderr)
            return 2
    print(card.table())
    if args.json == "-":
        sys.stdout.write(card.to_json())
    elif args.json:
        Path(args.json).write_text(card.to_json(), encoding="utf-8")
    return 1 if card.failed else 0
