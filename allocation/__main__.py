"""Command line: ``python -m allocation {allocate,bench,plan} ...`` (ALLOCATION_SPEC.md §8–§9).

Errors in the input print one message naming the file, row and column on stderr and exit with
code 2; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from allocation.errors import AllocationError

EXIT_BAD_INPUT = 2


def _cmd_allocate(args: argparse.Namespace) -> int:
    from allocation.csvio import read_node_hours, read_pod_hours, read_policy, write_result
    from allocation.engine import allocate

    policy = read_policy(args.policy)
    nodes = read_node_hours(args.nodes)
    pods = read_pod_hours(args.pods)
    keys = tuple(k.strip() for k in args.aggregate.split(",") if k.strip())
    result = allocate(nodes, pods, policy, aggregate=keys, step=args.step)
    write_result(result, args.out)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from allocation.bench import run_bench

    run_bench(args.pod_hours, seed=args.seed, hours=args.hours)
    return 0


def _cmd_plan(argv: list[str]) -> int:
    # Provided by allocation/plan.py (another module's owner); imported only when asked for.
    try:
        from allocation.plan import cli_main  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        print(f"allocation plan: not available ({exc})", file=sys.stderr)
        return EXIT_BAD_INPUT
    code: int = cli_main(argv)
    return code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``plan`` is listed here but dispatched before parsing)."""
    parser = argparse.ArgumentParser(
        prog="python -m allocation", description="Allocate Kubernetes node cost to pods."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    alloc = sub.add_parser("allocate", help="allocate node-hours to pod-hours (CSV in, CSV out)")
    alloc.add_argument("--nodes", required=True, help="node-hours CSV")
    alloc.add_argument("--pods", required=True, help="pod-hours CSV")
    alloc.add_argument("--policy", default=None, help="policy.json (every key optional)")
    alloc.add_argument(
        "--aggregate",
        default="namespace",
        help="comma-separated keys: cluster, node, node_pool, capacity_type, namespace, "
        "controller_kind, controller, pod, team, label:<key> (default: namespace)",
    )
    alloc.add_argument(
        "--step",
        default="window",
        choices=("hour", "day", "month", "window"),
        help="reporting step (default: window)",
    )
    alloc.add_argument("--out", required=True, help="result CSV (written only on success)")
    alloc.set_defaults(func=_cmd_allocate)
    bench = sub.add_parser("bench", help="time the engine on a synthetic cluster")
    bench.add_argument("--pod-hours", type=int, default=10_000_000)
    bench.add_argument("--hours", type=int, default=24, help="hours in the synthetic window")
    bench.add_argument("--seed", type=int, default=1)
    bench.set_defaults(func=_cmd_bench)
    sub.add_parser("plan", help="capacity plan (see allocation.plan)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "plan":
        return _cmd_plan(args_list[1:])
    args = build_parser().parse_args(args_list)
    try:
        code: int = args.func(args)
    except AllocationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code


if __name__ == "__main__":
    sys.exit(main())
