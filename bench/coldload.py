"""A partition's cold load: a fresh interpreter importing the library, reading its shard
files, parsing them (``Bundle.from_bytes``) and building the ``Searcher``, as a partition
search function does on its first invoke (S3's download left out).

The partition is ``--targets`` of ``bench.speed``'s cached distractors laid out in
``--shards`` shards by ``shard_of`` (``bench.speed.build_gallery``; the recommended 100k
layout: 6,250 targets in 4 of 64 shards), written under ``bench/out/coldload/``; each of
``--runs`` fresh interpreters loads it (``bench.speed``'s cold-start probe). ``--format 3``
writes the shards without their posting order, as before 2026-12-07, so the two can be
compared.

    python -m bench.coldload --targets 6250 --shards 4 --runs 5 [--format 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import zlib

from bench import speed
from bench.quality import OUT, save
from opencrs.index.bundle import Bundle
from opencrs.vision.params import DEFAULT


def as_format_3(bundle: Bundle) -> bytes:
    """``bundle`` written as format 3: the same layout without the posting order."""
    body = bytearray(bundle.to_bytes()[:-4])
    n = bundle.descriptors.shape[0]
    table_end = 24 + sum(2 + len(t.encode("utf-8")) + 13 for t in bundle.target_ids())
    words = -(-table_end // 8) * 8 + len(bundle) * (8 + 1024)
    del body[words + 4 * n : words + 8 * n]
    body[8:10] = struct.pack("<H", 3)
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=6250)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--format", type=int, choices=(3, 4), default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    # bench.speed's library of distractors alone (extracted into its cache if missing).
    shards = speed.build_gallery(args.targets, args, {}, DEFAULT).shards
    directory = OUT / "coldload"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    paths, size = [], 0
    for k, bundle in enumerate(shards):
        data = bundle.to_bytes() if args.format == 4 else as_format_3(bundle)
        path = directory / f"s{k:04d}.bin"
        path.write_bytes(data)
        paths.append(path)
        size += len(data)
    runs = [speed._cold_start(paths, 1) for _ in range(args.runs)]
    row = {
        "targets": args.targets,
        "shards": args.shards,
        "format": args.format,
        "bytes": size,
        "runs": runs,
    }
    print(json.dumps(row))
    print("\n| format | targets | shard bytes | import | read + parse | Searcher | total |")
    print("|---|---|---|---|---|---|---|")
    for key in ("import", "load", "build", "total"):
        row[key] = [r[key] for r in runs]
    cells = [
        f"{min(row[k]):.2f}-{max(row[k]):.2f} s (median {statistics.median(row[k]):.2f})"
        for k in ("import", "load", "build", "total")
    ]
    print(f"| {args.format} | {args.targets:,} | {size / 1e6:.0f} MB | " + " | ".join(cells) + " |")
    print(f"\n{speed.machine()}")
    save("coldload.json", row)


if __name__ == "__main__":
    main()
