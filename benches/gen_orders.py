#!/usr/bin/env python3
"""Generates N order-like Cyoda entities for the tsql benchmark.

Layout: OUT/orders/1/part-NN.ndjson, Cyoda envelopes of about 500 bytes each,
with nested lines (some with discounts). About 30% of the entities get a second
revision (a state change, written to a later part) and 1% a deleting revision,
so readers must pick the newest revision and drop deleted entities.

Deterministic for a given N and seed.
"""

import argparse
import json
import os
import random
import sys
from datetime import datetime, timedelta, timezone

BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
CHANNELS = ["web", "store", "phone", "partner"]
TIERS = ["gold", "silver", "bronze"]
CITIES = ["Berlin", "Lisbon", "Oslo", "Austin", "Osaka", "Lagos", "Lima", "Pune"]
CURRENCIES = ["EUR", "USD", "GBP"]


def iso(seconds):
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def entity_id(n):
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def order(rng, n):
    lines = []
    for _ in range(rng.randint(1, 4)):
        line = {"sku": f"SKU-{rng.randint(0, 9999):05d}", "qty": rng.randint(1, 9), "price": round(rng.uniform(1, 500), 2)}
        if rng.random() < 0.3:
            line["discounts"] = [{"code": f"D{rng.randint(0, 99)}", "pct": rng.choice([5, 10, 15, 20])}]
        lines.append(line)
    doc = {
        "orderId": f"O-{n:09d}",
        "channel": rng.choice(CHANNELS),
        "customer": {"name": f"Customer {rng.randint(0, 99999)}", "tier": rng.choice(TIERS), "city": rng.choice(CITIES)},
        "placed": iso(n * 7),
        "currency": rng.choice(CURRENCIES),
        "total": round(sum(l["qty"] * l["price"] for l in lines), 2),
        "lines": lines,
    }
    if rng.random() < 0.5:
        doc["note"] = "leave at the door" if rng.random() < 0.5 else "call first"
    return doc


def envelope(doc, n, state, created, updated, deleted=False):
    meta = {"id": entity_id(n), "state": state, "creationDate": iso(created), "lastUpdateTime": iso(updated)}
    if deleted:
        meta["deleted"] = True
    return json.dumps({"type": "ENTITY", "data": doc, "meta": meta}, separators=(",", ":"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--entities", type=int, default=1_000_000, help="number of entities (default 1,000,000)")
    p.add_argument("--parts", type=int, default=16, help="number of files (default 16)")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    d = os.path.join(a.out, "orders", "1")
    os.makedirs(d, exist_ok=True)
    rng = random.Random(a.seed)
    # First revisions fill the first parts; later revisions go to the last parts.
    first_parts = max(1, a.parts * 3 // 4)
    per_part = (a.entities + first_parts - 1) // first_parts
    updates = []
    files = [open(os.path.join(d, f"part-{i:02d}.ndjson"), "w") for i in range(a.parts)]
    written = 0
    for n in range(a.entities):
        doc = order(rng, n)
        created = n * 7
        files[min(n // per_part, first_parts - 1)].write(envelope(doc, n, "CREATED", created, created) + "\n")
        written += 1
        r = rng.random()
        if r < 0.01:
            updates.append(envelope(doc, n, "CANCELLED", created, created + 3600, deleted=True))
        elif r < 0.31:
            doc["channel"] = rng.choice(CHANNELS)
            updates.append(envelope(doc, n, "SHIPPED", created, created + 86400))
        if n % 100_000 == 0 and n:
            print(f"  {n} entities", file=sys.stderr)
    later = files[first_parts:] or files[-1:]
    for i, u in enumerate(updates):
        later[i % len(later)].write(u + "\n")
        written += 1
    for f in files:
        f.close()
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"wrote {a.entities} entities, {written} revisions, {size / 1e6:.0f} MB in {a.parts} files under {d}")


if __name__ == "__main__":
    main()
