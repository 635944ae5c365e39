#!/usr/bin/env python3
"""Runs the evasion suite's client jobs one at a time inside the client
container, so that a run costs one docker exec and not one per job.

  driver.py JOBS.json RESULTS.jsonl

JOBS.json: a list of {"id", "argv", "timeout"}. For each job: its argv is run
(stdout dropped), then what the server left in /x/pending for it is moved to
/x/jobs/ID. One JSON line per job: id, rc, t0, t1 (wall clock), err."""
import json
import os
import shutil
import subprocess
import sys
import time

X = "/x"


def claim(dest):
    pend = os.path.join(X, "pending")
    os.makedirs(dest, exist_ok=True)
    for name in os.listdir(pend):
        if not name.startswith("."):
            shutil.move(os.path.join(pend, name), os.path.join(dest, name))


def main():
    jobs = json.load(open(sys.argv[1]))
    os.makedirs(os.path.join(X, "pending"), exist_ok=True)
    claim(os.path.join(X, "jobs", "_before"))
    gap = float(os.environ.get("EV_GAP", "0.1"))
    with open(sys.argv[2], "w") as res:
        for job in jobs:
            t0 = time.time()
            try:
                p = subprocess.run(job["argv"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   timeout=job["timeout"])
                rc, err = p.returncode, p.stderr.decode(errors="replace")
            except subprocess.TimeoutExpired as e:
                rc, err = "timeout", (e.stderr or b"").decode(errors="replace")
            t1 = time.time()
            # The server may still be writing what it decoded, or finishing
            # the connection: a pause keeps jobs and their events apart.
            time.sleep(gap)
            claim(os.path.join(X, "jobs", job["id"]))
            res.write(json.dumps({"id": job["id"], "rc": rc, "t0": t0, "t1": t1,
                                  "err": err.strip()[-300:]}) + "\n")
            res.flush()


if __name__ == "__main__":
    main()
