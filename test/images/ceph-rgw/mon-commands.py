"""Run many Ceph monitor commands through one librados connection.

Each `ceph` CLI call pays ~0.3-0.5 s of Python start-up and connect, so the
entrypoint batches its set-up here. Usage:

    python3 mon-commands.py 'JSON command' ['JSON command' ...]

Each argument is one mon command as JSON (the form `ceph --format json` sends).
A command that fails stops the run with exit status 1. The pseudo-command
'{"wait_osd_up": 0}' polls the OSD map until osd.0 is up: a client that starts
before the OSD is up only retries on its 5 s objecter tick.
"""
import json
import sys
import time

import rados


def wait_osd_up(cluster, osd_id, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ret, out, _err = cluster.mon_command(json.dumps({"prefix": "osd dump", "format": "json"}), b"", timeout=10)
        if ret == 0 and any(o["osd"] == osd_id and o["up"] for o in json.loads(out)["osds"]):
            return True
        time.sleep(0.02)
    return False


def main(argv):
    cluster = rados.Rados(conffile="/etc/ceph/ceph.conf", name="client.admin")
    cluster.conf_set("client_mount_timeout", "60")
    cluster.connect(timeout=60)
    try:
        for raw in argv:
            cmd = json.loads(raw)
            if "wait_osd_up" in cmd:
                if not wait_osd_up(cluster, cmd["wait_osd_up"], cmd.get("timeout", 60)):
                    sys.stderr.write("timed out waiting for osd.%s to be up\n" % cmd["wait_osd_up"])
                    return 1
                continue
            cmd.setdefault("format", "json")
            ret, _out, err = cluster.mon_command(json.dumps(cmd), b"", timeout=60)
            if ret != 0:
                sys.stderr.write("mon command failed (%d): %s: %s\n" % (ret, raw, err))
                return 1
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
