"""Time by bucket from a py-spy raw profile of ``bench.profile_drive``. Not a test::

    python -m bench.profile_buckets drive.txt

Counts the samples of the drive (the engine's thread and the agent calls' pool, idle pool
threads left out), puts each in the first bucket whose marker its stack holds, and prints the
shares; then the reads by statement.
"""

from __future__ import annotations

import sys
from collections import Counter

BUCKETS = (
    ("the simulator (simulating, receipts, its ledger)", ("_perform_batch",)),
    ("decide", ("decide (reachflow/domain/decider",)),
    ("context and gate building (compliance)", ("context_from",)),
    ("batch writes (driver executemany, value conversion)", ("DriverWrite.execute",)),
    ("commits", ("do_commit",)),
    (
        "batch reads (rows, JSON, datetimes)",
        (
            "get_many",
            "claim_due",
            "claim_outbox",
            "claim_inbox",
            "refs_of",
            "facts_of",
            "held (reachflow",
            "get_agents",
        ),
    ),
    ("shaping the writes (rows, state JSON)", ("save_decisions", "_outbox_rows")),
)
READS = ("claim_outbox", "facts_of", "get_many", "claim_inbox", "claim_due", "refs_of")


def main(argv: list[str]) -> int:
    total = 0
    buckets: Counter[str] = Counter()
    reads: Counter[str] = Counter()
    with open(argv[0]) as raw:
        for line in raw:
            stack, _, count = line.rstrip().rpartition(" ")
            samples = int(count)
            if "run_until_idle" not in stack and "_perform_batch" not in stack:
                continue
            if stack.endswith("_worker (concurrent/futures/thread.py:81)"):
                continue  # an idle pool thread
            total += samples
            name = next(
                (b for b, markers in BUCKETS if any(m in stack for m in markers)),
                "the rest of the engine",
            )
            buckets[name] += samples
            for read in READS:
                if read in stack:
                    reads[read] += samples
    print(f"{total} samples of the drive")
    for name, samples in buckets.most_common():
        print(f"{100 * samples / total:5.1f} %  {name}")
    print("reads:")
    for name, samples in reads.most_common():
        print(f"{100 * samples / total:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
