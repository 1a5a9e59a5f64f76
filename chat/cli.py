"""The command line: ``python -m chat COMMAND ...``.  Entry points may print; the library logs."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys

from chat.tcp.limits import Limits

DEFAULT_PORT = 8000


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "check" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        from chat.lab.checker.cli import split_command

        argv, command = split_command(argv)  # check [options] -- COMMAND...: the command is the server's
    args = parser.parse_args(argv)
    if command:
        args.command = command
    level = args.log_level or args.default_log_level  # given before or after the command, or the command's own
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chat",
        description="chat lab: a multi-user chat on socket and threading, and the tools to measure it.",
    )
    parser.add_argument("--log-level", default=None, choices=LOG_LEVELS,
                        help="how much the library logs to stderr (default: info for the servers, which then "
                             "print who joins and leaves, warning for the rest); also accepted after the command")
    parser.set_defaults(default_log_level="warning")
    commands = _Commands(parser.add_subparsers(title="commands", required=True, metavar="COMMAND"))
    _add_server(commands)
    _add_client(commands)
    _add_demo(commands)
    _add_bench(commands)
    _add_udp_server(commands)
    _add_udp_client(commands)
    _add_report(commands)
    from chat.lab.checker.cli import add_parser as add_check

    add_check(commands)
    return parser


LOG_LEVELS = ["debug", "info", "warning", "error"]


class _Commands:
    """The subparsers, each given ``--log-level`` too, so that it may come after the command."""

    def __init__(self, subparsers) -> None:
        self._subparsers = subparsers

    def add_parser(self, name: str, **options) -> argparse.ArgumentParser:
        parser = self._subparsers.add_parser(name, **options)
        parser.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS,
                            help="how much is logged to stderr (as before the command)")
        return parser


def _add_network(parser: argparse.ArgumentParser, port: int = DEFAULT_PORT, transport: str = "TCP",
                 role: str = "server") -> None:
    if role == "server":
        host_help = "address to listen on (default 127.0.0.1; 0.0.0.0 opens the server to your network)"
        port_help = f"{transport} port to listen on (default {port}; 0 picks a free one)"
    else:
        host_help = "the server's address (default 127.0.0.1)"
        port_help = f"the server's {transport} port (default {port})"
    parser.add_argument("--host", default="127.0.0.1", help=host_help)
    parser.add_argument("--port", type=port_number, default=port, help=port_help)


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for the server's answers, the welcome first (default 10)")
    parser.add_argument("--time", action=argparse.BooleanOptionalAction, default=None,
                        help="the local time in front of each line (default: on a terminal, yes; piped, no)")


def port_number(text: str) -> int:
    """A TCP or UDP port, 0-65535 (argparse turns the ValueError into a usage error)."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(text)
    return port


# -- server ------------------------------------------------------------------------


def _add_server(commands) -> None:
    defaults = Limits()
    parser = commands.add_parser("server", help="run the chat server until Ctrl+C",
                                 description="Run the chat server until Ctrl+C or SIGTERM (exit code 0).")
    _add_network(parser)
    parser.add_argument("--max-clients", type=int, default=defaults.max_clients, metavar="N",
                        help=f"connections at once; one more gets an error line (default {defaults.max_clients})")
    parser.add_argument("--max-line", type=int, default=defaults.max_line_bytes, metavar="BYTES",
                        help=f"longest line a client may send, in bytes of UTF-8; longer gets an error (default "
                             f"{defaults.max_line_bytes}: about {defaults.max_line_bytes} Latin or "
                             f"{defaults.max_line_bytes // 2} Cyrillic letters)")
    parser.add_argument("--max-rate", type=float, default=defaults.rate_lines_per_s, metavar="LINES_PER_S",
                        help=f"lines per second per client before the server slows its reading; 0 is off (default {defaults.rate_lines_per_s:g})")
    parser.add_argument("--burst", type=int, default=defaults.rate_burst_lines, metavar="LINES",
                        help=f"lines a client may send at once before --max-rate applies (default {defaults.rate_burst_lines})")
    parser.add_argument("--sendq", type=int, default=defaults.sendq_bytes, metavar="BYTES",
                        help=f"bytes queued for one client before it is dropped as too slow (default {defaults.sendq_bytes})")
    parser.add_argument("--sndbuf", type=int, default=defaults.socket_sndbuf_bytes, metavar="BYTES",
                        help="the kernel's send buffer per client (SO_SNDBUF), on top of --sendq; "
                             "0 leaves it to the system, which may grow it to megabytes (default 0)")
    parser.add_argument("--registration-timeout", type=float, default=defaults.registration_timeout_s, metavar="SECONDS",
                        help=f"time a new connection has to choose a name (default {defaults.registration_timeout_s:g})")
    parser.add_argument("--no-nodelay", dest="nodelay", action="store_false",
                        help="leave Nagle's algorithm on (slower; for experiments)")
    parser.set_defaults(run=_run_server, default_log_level="info")  # joins and leaves on the terminal


def server_limits(args: argparse.Namespace) -> Limits:
    return Limits(
        max_clients=args.max_clients,
        max_line_bytes=args.max_line,
        sendq_bytes=args.sendq,
        socket_sndbuf_bytes=args.sndbuf,
        rate_lines_per_s=args.max_rate,
        rate_burst_lines=args.burst,
        registration_timeout_s=args.registration_timeout,
    )


def _run_server(args: argparse.Namespace) -> int:
    from chat.tcp.server import ChatServer

    try:
        server = ChatServer(args.host, args.port, server_limits(args), nodelay=args.nodelay)
    except (OSError, ValueError) as exc:
        print(f"can't start the server on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address
    reach = _reachable_as(host)
    return serve_until_stopped(server, f"chat server on {host}:{port}; connect with "
                                       f"`python -m chat client --host {reach} --port {port}` or `nc {reach} {port}`; "
                                       f"Ctrl+C stops it")


def _reachable_as(host: str) -> str:
    """How others name a server listening on ``host`` (all interfaces: by this machine's address)."""
    return "THIS_MACHINE_ADDRESS" if host in ("0.0.0.0", "::") else host


def serve_until_stopped(server, banner: str) -> int:
    """Print the banner, serve until Ctrl+C or SIGTERM, stop cleanly; exit code 0."""
    with stop_on_signals():
        print(banner, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
    print("server stopped", flush=True)
    return 0


@contextlib.contextmanager
def stop_on_signals():
    """Within this block SIGINT (Ctrl+C) and SIGTERM raise KeyboardInterrupt, so both stop the same way.

    Only the first one does: after it both are ignored until the block ends, so
    an impatient second Ctrl+C can't interrupt the stop and leave threads behind.

    SIGINT gets its handler explicitly: a process started in the background by a
    non-interactive shell (``cmd &`` in a script) inherits SIGINT *ignored*, and
    Python then installs no Ctrl+C handler of its own, so the server would not stop.
    """

    def interrupt(signum, frame):
        for each in previous:  # a second Ctrl+C must not cut the clean stop short
            signal.signal(each, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {}  # filled before a handler can run: a signal may come between the two installs
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.getsignal(signum)
    for signum in previous:
        signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# -- client and demo ---------------------------------------------------------------------


def _add_client(commands) -> None:
    from chat.console import EXIT_CODES

    parser = commands.add_parser("client", help="chat from this terminal",
                                 description="Chat from this terminal. /help lists the commands, Tab completes "
                                             "them and the names online; /quit, Ctrl+D or Ctrl+C leave.", epilog=EXIT_CODES)
    parser.add_argument("name", nargs="?", help="your name (asked for if missing)")
    _add_network(parser, role="client")
    _add_client_options(parser)
    parser.set_defaults(run=_run_client)


def _run_client(args: argparse.Namespace) -> int:
    from chat.console import run

    return run(args.host, args.port, args.name, timeout_s=args.timeout, clock=args.time)


def _add_demo(commands) -> None:
    parser = commands.add_parser("demo", help="a server and four simulated users talk for a few seconds",
                                 description="Start a chat server on a free port of 127.0.0.1 and four simulated "
                                             "users (two with Cyrillic names) who join, talk, use /me, /who, /msg "
                                             "and /nick, and leave; print what Алиса saw and the server's counters, "
                                             "then stop everything and check that no thread is left.")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long they talk (default 3)")
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from chat.demo import run_demo

    print(f"A chat server and four users talk for {args.seconds:g} s...\n", flush=True)
    result = run_demo(args.seconds)
    print(f"What {result.viewer} saw:")
    for line in result.transcript:
        print("   ", line)
    stats = result.stats
    print("\nServer counters:")
    print(f"    connections {stats.connections_total}, users online {stats.users_now} (peak {stats.users_peak})")
    print(f"    lines in {stats.lines_in}, deliveries {stats.deliveries}, "
          f"bytes in {stats.bytes_in}, bytes out {stats.bytes_out}")
    print(f"    left: {', '.join(f'{n} {reason}' for reason, n in stats.leaves.items()) or 'nobody'}; "
          f"errors {stats.errors}")
    leftover = result.threads_after - result.threads_before
    print(f"\nServer stopped; threads left behind: {leftover}.")
    return 0 if leftover == 0 and stats.errors == 0 else 1


# -- benchmarks --------------------------------------------------------------------------------


def _add_bench(commands) -> None:
    from chat.lab.bench import SCENARIOS

    parser = commands.add_parser(
        "bench", help="measure our server against the textbook one",
        description="Run a benchmark scenario: our server and the textbook one side by side, each in its "
                    "own process, the load generator in another. Writes SCENARIO.json under --out.")
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"], help="what to measure")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="seconds per scenario, for CI and notebooks (the default)")
    size.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="the report's figures: longer runs, repeated")
    parser.set_defaults(mode="quick")
    parser.add_argument("--out", default="results", help="folder for the results (default: results)")
    parser.add_argument("--csv", action="store_true", help="also write SCENARIO.csv")
    parser.add_argument("--plot", action="store_true", help="also draw the scenario's figures (SVG) into --out")
    parser.add_argument("--users", type=_numbers(int), default=None, metavar="N[,N...]",
                        help="the numbers of users to measure instead of the scenario's own")
    parser.add_argument("--rates", type=_numbers(float), default=None, metavar="R[,R...]",
                        help="the offered loads (messages/s in all) instead of the scenario's own")
    parser.add_argument("--seconds", type=float, default=None,
                        help="how long each run sends; the soak: how long it runs (default 10 with --quick, 60 with --full)")
    parser.set_defaults(run=_run_bench)


def _numbers(kind):
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    return parse


def _run_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from chat.lab import bench
    from chat.lab import results as lab_results

    names = list(bench.SCENARIOS) if args.scenario == "all" else [args.scenario]
    out = Path(args.out)
    for name in names:
        with tqdm(desc=name, unit=" run", file=sys.stderr, leave=True) as bar:
            def step(label: str) -> None:  # called as each run starts
                bar.update(0 if bar.postfix is None else 1)
                bar.set_postfix_str(label)

            sizes = {"users": args.users, "rates": args.rates, "seconds": args.seconds}
            chosen = {key: value for key, value in sizes.items() if value is not None and key in bench.SIZES[name]}
            if args.scenario != "all" and len(chosen) < sum(value is not None for value in sizes.values()):
                bar.close()
                accepted = ", ".join(sorted(bench.SIZES[name])) or "none"
                print(f"chat bench: {name} takes only these sizes: {accepted}", file=sys.stderr)
                return 2
            result = bench.run_scenario(name, args.mode, step, **chosen)
            bar.update(1)
        for path in lab_results.save(result, out, args.csv):
            print(f"wrote {path}")
        if args.plot:
            for path in draw_scenario(result, out):
                print(f"wrote {path}")
        print_targets(result)
    return 0


def print_targets(result: dict) -> None:
    print(f"\n{result['scenario']} ({result['mode']}), on {result['machine']['cpus']} x {result['machine']['cpu']}:")
    for target in result["targets"]:
        verdict = {True: "met", False: "NOT MET", None: ""}[target["met"]]
        limit = f" (target {target['relation']} {target['limit']})" if target["limit"] is not None else ""
        print(f"  {target['name']}: {target['value']}{limit} {verdict}")


def draw_scenario(result: dict, out) -> list:
    from chat.reporting import canvas, plots

    return [canvas.save(figure, out / f"{name}.svg") for name, figure in plots.figures_for(result).items()]


# -- UDP ---------------------------------------------------------------------------------------------


def _add_udp_server(commands) -> None:
    from chat import protocol
    from chat.udp import DEFAULT_UDP_PORT, MEMBER_TIMEOUT_S

    parser = commands.add_parser("udp-server", help="run the UDP chat server until Ctrl+C",
                                 description="Run the UDP chat server until Ctrl+C or SIGTERM (exit code 0). "
                                             "Clients join with /join NAME; nc -u works.")
    _add_network(parser, DEFAULT_UDP_PORT, "UDP")
    parser.add_argument("--member-timeout", type=float, default=MEMBER_TIMEOUT_S, metavar="SECONDS",
                        help=f"drop a member silent for this long (default {MEMBER_TIMEOUT_S:g})")
    parser.add_argument("--max-payload", type=int, default=protocol.MAX_DATAGRAM_BYTES, metavar="BYTES",
                        help=f"largest datagram accepted or relayed (default {protocol.MAX_DATAGRAM_BYTES})")
    parser.add_argument("--max-members", type=int, default=500, metavar="N", help="members at once (default 500)")
    parser.add_argument("--max-rate", type=float, default=10.0, metavar="DATAGRAMS_PER_S",
                        help="datagrams per second per member; what passes it is dropped and counted (UDP can't make "
                             "a sender wait); 0 is off (default 10)")
    parser.add_argument("--burst", type=int, default=20, metavar="DATAGRAMS",
                        help="datagrams a member may send at once before --max-rate applies (default 20)")
    parser.add_argument("--drop", type=float, default=0.0, metavar="P",
                        help="experiments: drop each relayed message with probability P (default 0)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="experiments: delay relayed messages (default 0)")
    parser.add_argument("--jitter-ms", type=float, default=0.0,
                        help="experiments: add a random 0..J ms to the delay, which reorders (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drop and jitter choices (default 0)")
    parser.set_defaults(run=_run_udp_server, default_log_level="info")


def _run_udp_server(args: argparse.Namespace) -> int:
    from chat.udp import Faults, UDPChatServer

    try:
        faults = Faults(drop=args.drop, delay_s=args.delay_ms / 1000, jitter_s=args.jitter_ms / 1000, seed=args.seed)
        server = UDPChatServer(args.host, args.port, member_timeout_s=args.member_timeout,
                               max_payload_bytes=args.max_payload, max_members=args.max_members, faults=faults,
                               rate_lines_per_s=args.max_rate, rate_burst_lines=args.burst)
    except (OSError, ValueError) as exc:
        print(f"can't start the UDP server on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address
    reach = _reachable_as(host)
    return serve_until_stopped(server, f"UDP chat server on {host}:{port}; connect with `python -m chat "
                                       f"udp-client --host {reach} --port {port}` or `nc -u {reach} {port}` "
                                       f"(then /join NAME); Ctrl+C stops it")


def _add_udp_client(commands) -> None:
    from chat.console import EXIT_CODES
    from chat.udp import DEFAULT_UDP_PORT

    parser = commands.add_parser("udp-client", help="chat from this terminal over UDP",
                                 description="Chat over UDP from this terminal. /help lists the commands, Tab "
                                             "completes them and the names online; /quit, Ctrl+D or Ctrl+C leave.", epilog=EXIT_CODES)
    parser.add_argument("name", nargs="?", help="your name (asked for if missing)")
    _add_network(parser, DEFAULT_UDP_PORT, "UDP", role="client")
    _add_client_options(parser)
    parser.set_defaults(run=_run_udp_client)


def _run_udp_client(args: argparse.Namespace) -> int:
    from chat.console import run
    from chat.udp import UDPChatClient

    return run(args.host, args.port, args.name, UDPChatClient, timeout_s=args.timeout, clock=args.time)


# -- the report ------------------------------------------------------------------------------------------


def _add_report(commands) -> None:
    parser = commands.add_parser(
        "report", help="rerun the experiments and regenerate the lab report",
        description="Rerun every experiment, redraw the figures, capture a real session, and render "
                    "report/README.md and report/README.ru.md (and the README's Performance section) "
                    "from the results. --quick writes a small version elsewhere.")
    parser.add_argument("--quick", action="store_true",
                        help="short runs (minutes), written to results/report-quick unless --out is given")
    parser.add_argument("--out", default=None, help="where to write (default: report/, or results/report-quick)")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: redraw the figures and rerender the text from the stored results")
    parser.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from chat.reporting import render

    out = Path(args.out) if args.out else (Path("results/report-quick") if args.quick else render.REPORT_DIR)
    if args.quick and out.resolve() == render.REPORT_DIR.resolve():
        print("refusing to overwrite the full report with a quick one; give another --out", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if args.render_only and not (out / "results").is_dir():
        print(f"no stored results in {out / 'results'}", file=sys.stderr)
        return 2
    with tqdm(desc="report", unit=" step", file=sys.stderr) as bar:
        def step(label: str) -> None:
            bar.update(0 if bar.postfix is None else 1)
            bar.set_postfix_str(label)

        written = render.generate(out, "quick" if args.quick else "full", step, measure=not args.render_only)
        bar.update(1)
    for path in written:
        print(f"wrote {path}")
    return 0
