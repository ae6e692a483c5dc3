"""jobs worker: takes jobs from the spool directory, one of the apps of the example ecosystem.

Python standard library only. Polls SPOOL_DIR (default examples/jobs/spool, relative to
the cwd) every 0.5 s for `*.job` files. A job is claimed by renaming it to `*.working`:
rename is atomic, so when several instances race for one file exactly one wins and the
others move on. The job is "processed" (its content logged, WORK_SECONDS of sleep,
default 1) and then moved to `done/`. One log line per job, tagged with SUP_INSTANCE.

SIGTERM or SIGINT: finish the current job, then exit 0. A worker killed with SIGKILL
mid-job leaves its `*.working` file behind; rename it back to `*.job` to retry it.
"""

import os
import signal
import sys
import time

SPOOL_DIR = os.environ.get("SPOOL_DIR", "examples/jobs/spool")
DONE_DIR = os.path.join(SPOOL_DIR, "done")
INSTANCE = os.environ.get("SUP_INSTANCE", "0")
WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "1"))
POLL_SECONDS = 0.5
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def log(message):
    print(f"worker {INSTANCE} pid={os.getpid()} {message}", flush=True)


def claim():
    """Returns (name, path of the claimed file), or None when no job is waiting."""
    for name in sorted(os.listdir(SPOOL_DIR)):
        if not name.endswith(".job"):
            continue
        working = os.path.join(SPOOL_DIR, name[: -len(".job")] + ".working")
        try:
            os.rename(os.path.join(SPOOL_DIR, name), working)
        except FileNotFoundError:
            continue  # another worker was faster
        return name, working
    return None


def process(name, working):
    started = time.monotonic()
    with open(working, encoding="utf-8", errors="replace") as f:
        content = f.read()
    time.sleep(WORK_SECONDS)
    os.rename(working, os.path.join(DONE_DIR, name))
    took = time.monotonic() - started
    log(f"done {name} in {took:.2f}s: {content.strip()!r}")


def stop_requested(timeout):
    """Waits up to `timeout` seconds for a stop signal; True if one came."""
    return signal.sigtimedwait(STOP_SIGNALS, timeout) is not None


def main():
    os.makedirs(DONE_DIR, exist_ok=True)
    # Stop signals are blocked and only looked at between jobs, so a SIGTERM that arrives
    # mid-job stays pending until the job is done; the poll sleep doubles as the wait.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    log(f"watching {os.path.abspath(SPOOL_DIR)}")
    while True:
        job = claim()
        if job is not None:
            process(*job)
        if stop_requested(0 if job is not None else POLL_SECONDS):
            break
    log("stop signal: exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
