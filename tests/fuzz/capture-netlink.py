#!/usr/bin/env python3
"""Writes netlink message payloads (rtmsg/fib_rule_hdr/ifinfomsg and their
attributes, without the nlmsghdr) dumped from the current network namespace
into seeds/netlink/, one file per message: the `netlink` target's seeds.
Run inside a throwaway namespace with some links, rules and routes, e.g.
  ip netns add cap; ip netns exec cap tests/fuzz/capture-netlink.py"""
import os, socket, struct, sys

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "netlink")
os.makedirs(out, exist_ok=True)
RTM_GETLINK, RTM_GETROUTE, RTM_GETRULE = 18, 26, 34
NLM_F_REQUEST, NLM_F_DUMP = 1, 0x300
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
n = 0
for kind, family, name in [(RTM_GETLINK, 0, "link"), (RTM_GETROUTE, 2, "route4"),
                           (RTM_GETROUTE, 10, "route6"), (RTM_GETRULE, 2, "rule4"),
                           (RTM_GETRULE, 10, "rule6")]:
    body = struct.pack("BxxxIII", family, 0, 0, 0) if kind == RTM_GETLINK else struct.pack("BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)
    s.send(struct.pack("IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
    done = False
    while not done:
        data = s.recv(1 << 16)
        off = 0
        while off + 16 <= len(data):
            length, typ, flags, seq, pid = struct.unpack_from("IHHII", data, off)
            if typ == 3 or length < 16:  # NLMSG_DONE
                done = True
                break
            payload = data[off + 16: off + length]
            with open(os.path.join(out, f"{name}-{n:03d}"), "wb") as f:
                f.write(payload)
            n += 1
            off += (length + 3) & ~3
print(f"{n} messages written to {out}", file=sys.stderr)
