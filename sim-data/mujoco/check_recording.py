#!/usr/bin/env python3
"""Read back an igebm-rs MCAP recording written by fetch_record.py or hand_record.py and check its layout."""

import argparse
import json
import math
import sys

from mcap.reader import make_reader
from mcap.records import Message, Metadata
from mcap.stream_reader import StreamReader

HEADER_KEYS = {
    "format_version", "robot_id", "robot_kind", "encoding", "trajectories", "steps", "control_period_ns",
    "generator", "seed", "config", "split_train", "split_test", "state_dim", "action_dim",
    "state_names", "state_units", "action_names", "action_units",
}


def parse_ids(s):
    ids = []
    for part in filter(None, s.split(",")):
        a, _, b = part.partition("-")
        ids.extend(range(int(a), int(b or a) + 1))
    return ids


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("path")
    args = p.parse_args()
    with open(args.path, "rb") as f:
        # The header record must come before any message in file order.
        first = None
        for rec in StreamReader(f, skip_magic=False).records:
            if isinstance(rec, (Metadata, Message)):
                first = rec
                break
        assert isinstance(first, Metadata) and first.name == "ebm-recording", f"first record: {first}"
        h = dict(first.metadata)
        assert set(h) == HEADER_KEYS, set(h) ^ HEADER_KEYS
        assert h["format_version"] == "2" and h["encoding"] == "json" and h["robot_kind"], h["robot_kind"]
        n, T, period = int(h["trajectories"]), int(h["steps"]), int(h["control_period_ns"])
        sd, ad = int(h["state_dim"]), int(h["action_dim"])
        for k, dim in [("state_names", sd), ("state_units", sd), ("action_names", ad), ("action_units", ad)]:
            v = json.loads(h[k])
            assert len(v) == dim and all(isinstance(x, str) for x in v), k
        train, test = parse_ids(h["split_train"]), parse_ids(h["split_test"])
        assert sorted(train + test) == list(range(n)) and len(test) == math.floor(n / 10 + 0.5)

        f.seek(0)
        reader = make_reader(f)
        summary = reader.get_summary()
        for ch in summary.channels.values():
            assert ch.message_encoding == "json" and ch.metadata == {"protocol_version": "1"}, ch
            sc = summary.schemas[ch.schema_id]
            assert sc.encoding == "jsonschema", sc
        rid = h["robot_id"]
        counts = {"state": 0, "action": 0}
        expect = 0  # index of the next (state, action) pair
        want_kind = "state"
        for schema, channel, msg in reader.iter_messages(log_time_order=False):
            kind = channel.topic.rsplit("/", 1)[1]
            assert channel.topic == f"ebm/{rid}/{kind}", channel.topic
            assert kind == want_kind, (kind, want_kind, expect)
            env = json.loads(msg.data)
            assert set(env) == {"v", "msg"} and env["v"] == 1
            m = env["msg"]
            seq = expect
            e = seq // T
            stamp = seq * period
            assert m["robot_id"] == rid and m["episode"] == e and m["seq"] == seq and m["stamp_ns"] == stamp, m
            assert msg.log_time == stamp and msg.publish_time == stamp and msg.sequence == seq & 0xFFFFFFFF
            if kind == "state":
                assert set(m) == {"robot_id", "episode", "seq", "stamp_ns", "state", "last_action"}
                assert m["last_action"] is None and len(m["state"]) == sd
                vals = m["state"]
                want_kind = "action"
            else:
                assert set(m) == {"robot_id", "episode", "seq", "stamp_ns", "action"}
                vals = m["action"]
                assert len(vals) == ad and all(-1.0 <= x <= 1.0 for x in vals)
                want_kind = "state"
                expect += 1
            assert all(isinstance(x, (int, float)) and math.isfinite(x) for x in vals)
            counts[kind] += 1
        assert counts == {"state": n * T, "action": n * T}, counts
        meta = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
    print(f"ok: {args.path}: {n} trajectories x {T} steps, {counts['state']} states + {counts['action']} actions")
    print("summary:", meta.get("ebm-recording-summary"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
