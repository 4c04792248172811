#!/usr/bin/python3
"""A third-party OffloadCage actuator, written from docs/protocol.md alone (Python 3, python3-zmq).

It advises rather than acts: for each cage it works out the VM cap the resource cage would set
(cage cap minus the IDS's CPU, never below 10% of the cap) and publishes that as its state and,
when the advice moves by a whole point or more, as a dry-run decision. It touches nothing, so it
is safe to run beside the built-in actuators; a real one would apply the value where this one
only reports it.

`cage run` starts it from agent.actuators.external and passes where everything is:
  OFFLOADCAGE_ACTUATOR    our name (the `actuator` field of what we publish)
  OFFLOADCAGE_AGGREGATES  the pipeline's PUB endpoint (topic agg.window: every cage's aggregate, once a window)
  OFFLOADCAGE_PUBLISH     the endpoint we bind for act.state / act.decision
  NODE_CHANNEL_FD         an inherited descriptor whose hang-up means the agent died: exit then
"""
import json
import math
import os
import random
import signal
import struct
import sys
import time

import zmq

NAME = os.environ.get("OFFLOADCAGE_ACTUATOR", "advisor")
AGGREGATES = os.environ["OFFLOADCAGE_AGGREGATES"]
PUBLISH = os.environ["OFFLOADCAGE_PUBLISH"]
PARENT_FD = int(os.environ["NODE_CHANNEL_FD"]) if os.environ.get("NODE_CHANNEL_FD", "").isdigit() else None
STATE_EVERY_S = 1.0

HEADER = struct.Struct("<BBBBIQQ")  # magic "OC", version, encoding, publisherId, sequence, sentAtUs
JSON_ENCODING = 3
PUBLISHER_ID = random.randint(1, 2**32 - 1)


def log(level, msg, **fields):
    # One JSON line per event on stderr: cage run relays it into the agent's log.
    print(json.dumps({"level": level, "name": f"actuator-{NAME}", "msg": msg, **fields}), file=sys.stderr, flush=True)


def finite_at_least(value, low):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= low


def valid_aggregate(a):
    """The receiver's checks of docs/protocol.md (Cage aggregate) that this actuator relies on."""
    if not isinstance(a, dict) or a.get("v") != 1:
        return False
    if not isinstance(a.get("cage"), str) or a["cage"] == "":
        return False
    vm, ids = a.get("vm"), a.get("ids")
    if not isinstance(vm, dict) or not isinstance(ids, dict):
        return False
    if not finite_at_least(a.get("timeMs"), 0) or not finite_at_least(ids.get("cpuPct"), 0):
        return False
    cap = a.get("capPct")
    return finite_at_least(cap, 0) and cap > 0


class Publisher:
    def __init__(self, context):
        self.socket = context.socket(zmq.PUB)
        self.socket.bind(PUBLISH)
        self.sequence = {}

    def publish(self, topic, message):
        seq = self.sequence.get(topic, 0)
        self.sequence[topic] = seq + 1
        header = HEADER.pack(0x4F, 0x43, 1, JSON_ENCODING, PUBLISHER_ID, seq, int(time.time() * 1e6))
        self.socket.send_multipart([topic.encode(), header, json.dumps(message).encode()])


def aggregates_of(message):
    """The aggregates of one agg.window message, or None when its envelope is malformed."""
    if not isinstance(message, dict) or message.get("v") != 1 or not isinstance(message.get("aggregates"), list):
        return None
    return message["aggregates"]


def advised_cap(a):
    cap = a["capPct"]
    return max(cap * 0.1, cap - a["ids"]["cpuPct"])


def main():
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.connect(AGGREGATES)
    sub.setsockopt(zmq.SUBSCRIBE, b"agg.window")
    pub = Publisher(context)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stopping.append("SIGINT"))
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    if PARENT_FD is not None:
        poller.register(PARENT_FD, zmq.POLLIN)
    advice = {}  # cage -> (advised cap, last published decision value)
    invalid = 0
    last_seq = {}
    next_state = time.monotonic()
    log("info", "started", aggregates=AGGREGATES, publish=PUBLISH)
    while not stopping:
        events = dict(poller.poll(200))
        if PARENT_FD is not None and PARENT_FD in events:
            # Readable with nothing to read = hung up: the agent is gone, and so are we.
            try:
                gone = os.read(PARENT_FD, 4096) == b""
            except OSError:
                gone = True
            if gone:
                log("warn", "the agent died; exiting")
                break
        if sub in events:
            while True:
                try:
                    frames = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) != 3 or frames[0] != b"agg.window" or len(frames[1]) != HEADER.size:
                    invalid += 1
                    continue
                m0, m1, version, encoding, publisher, seq, _ = HEADER.unpack(frames[1])
                if (m0, m1, version, encoding) != (0x4F, 0x43, 1, JSON_ENCODING):
                    invalid += 1
                    continue
                previous = last_seq.get(publisher)
                if previous is not None and seq > previous + 1:
                    log("warn", "aggregates lost", lost=seq - previous - 1)
                if previous is None or seq > previous:
                    last_seq[publisher] = seq
                try:
                    aggregates = aggregates_of(json.loads(frames[2]))
                except ValueError:
                    aggregates = None
                if aggregates is None:
                    invalid += 1
                    continue
                # Each aggregate is checked on its own: a bad one is dropped, the others are used.
                for a in aggregates:
                    if not valid_aggregate(a):
                        invalid += 1
                        continue
                    cap = advised_cap(a)
                    _, decided = advice.get(a["cage"], (None, None))
                    if decided is None or abs(cap - decided) >= 1:
                        pub.publish("act.decision", {
                            "v": 1, "actuator": NAME, "cage": a["cage"], "timeMs": time.time() * 1000,
                            "setting": "vm.cpu.cap", "from": decided, "to": round(cap, 1),
                            "reason": f"cage cap {a['capPct']}% minus IDS {a['ids']['cpuPct']:.1f}%", "dryRun": True,
                        })
                        decided = cap
                    advice[a["cage"]] = (cap, decided)
        if time.monotonic() >= next_state:
            next_state += STATE_EVERY_S
            for cage, (cap, _) in advice.items():
                pub.publish("act.state", {
                    "v": 1, "actuator": NAME, "cage": cage, "timeMs": time.time() * 1000, "mode": "dry-run",
                    "backend": "advice", "values": {"vmCpuCapPct": round(cap, 1), "invalidAggregates": invalid},
                })
    log("info", "stopped", reason=stopping[0] if stopping else "parent died")
    sub.close(0)
    pub.socket.close(0)
    context.term()


if __name__ == "__main__":
    main()
