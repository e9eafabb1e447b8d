"""`ewc worker --slots N`: N worker processes on one device, supervised by one parent.

TensorFlow does not survive a fork (Celery's prefork pool hangs it), so each slot is a
separate process: a plain `ewc worker` (solo pool, one job at a time), started by this
parent, which never imports TensorFlow. Jobs are claimed from the database
(`store.claims.claim_next_job`, `FOR UPDATE SKIP LOCKED` / `BEGIN IMMEDIATE`), so N slots
run each job exactly once, just as N separate `ewc worker`s do.

- Each child gets `EWC_WORKER_SLOTS=1` (it runs one job at a time itself),
  `EWC_WORKER_SLOT=k` (1..N, in its log lines' hostname) and `EWC_WORKER_SLOT_COUNT=N`.
  On a GPU, `worker.devices.detect_device` then caps the child's memory: `EWC_GPU_MEMORY_MB`
  if set, else 90 % of the GPU's memory ÷ N, so N small jobs share one device.
- Each child's TensorFlow thread pools get a share of the cores (`slot_threads`:
  `TF_NUM_INTRAOP_THREADS` = cores ÷ N, `TF_NUM_INTEROP_THREADS` = 1, unless set).
- A child that exits while the parent is not stopping is restarted (after 1 s, doubling to
  30 s while it keeps dying within 30 s of its start); three quick deaths in a row stop
  every slot and the parent exits with that child's code (a configuration error, such as a
  database that was never migrated, would otherwise restart for ever).
- SIGTERM or SIGINT (Ctrl-C) to the parent: each child gets one SIGTERM (Celery's warm
  shutdown: a running job is handed back, see docs/architecture.md), the parent waits for
  all of them (`EWC_WORKER_STOP_TIMEOUT_S`, default 50 s, inside compose's 60 s grace
  period; then SIGKILL) and exits 0. The children run in their own process group, so a
  terminal's Ctrl-C reaches them only through the parent, once; on Linux a child also
  gets SIGTERM if the parent dies.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("ewc.worker")

#: A child that dies this soon after its start counts as a failed start.
QUICK_DEATH_S = 30.0
#: Failed starts in a row (of one slot) that stop the whole worker.
MAX_QUICK_DEATHS = 3
RESTART_DELAY_S = (1.0, 30.0)  # first delay, ceiling

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # pragma: no cover - runs in the child before exec
    os.setpgid(0, 0)
    try:  # die with the parent (Linux): SIGTERM when it goes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class Slot:
    number: int
    popen: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restarts: int = 0
    restart_at: float | None = None
    exits: list[int] = field(default_factory=list)


def slot_threads(count: int) -> dict[str, str]:
    """TensorFlow's thread pools for one of `count` slots: the cores shared out
    (intra-op ⌊cores ÷ N⌋, at least 1; inter-op 1), unless the environment sets them. N
    processes each with a pool as wide as the machine would only fight over the cores."""
    cores = os.cpu_count() or 1
    return {"TF_NUM_INTRAOP_THREADS": str(max(1, cores // count)), "TF_NUM_INTEROP_THREADS": "1"}


def child_command(queues: str) -> list[str]:
    """One slot's command line: a plain `ewc worker` on the same queues."""
    return [sys.executable, "-c", "from cli.main import main; main()", "worker", "--queue", queues]


class SlotSupervisor:
    """Starts `count` worker processes and keeps them running until stopped."""

    def __init__(self, count: int, queues: str, *, stop_timeout: float | None = None):
        self.count, self.queues = count, queues
        self.stop_timeout = (
            stop_timeout if stop_timeout is not None
            else float(os.environ.get("EWC_WORKER_STOP_TIMEOUT_S", "50"))
        )  # fmt: skip
        self.slots = [Slot(k) for k in range(1, count + 1)]
        self._stopping = threading.Event()
        self.exit_code = 0

    def _start(self, slot: Slot) -> None:
        env = {
            **slot_threads(self.count),
            **os.environ,
            "EWC_WORKER_SLOTS": "1",
            "EWC_WORKER_SLOT": str(slot.number),
            "EWC_WORKER_SLOT_COUNT": str(self.count),
        }
        slot.popen = subprocess.Popen(child_command(self.queues), env=env, preexec_fn=_child_setup)  # noqa: PLW1509 - no threads here
        slot.started_at = time.monotonic()
        slot.restart_at = None
        log.info("event=slot_start slot=%d of=%d pid=%d", slot.number, self.count, slot.popen.pid)

    def stop(self, *_signal: object) -> None:
        """Ask every slot to stop (signal-handler safe: only sets a flag)."""
        self._stopping.set()

    def _reap(self, slot: Slot, now: float) -> bool:
        """Handle one slot whose child exited; False when the whole worker must stop."""
        assert slot.popen is not None
        code = slot.popen.returncode
        lived = now - slot.started_at
        slot.exits.append(code)
        slot.popen = None
        slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
        if slot.quick_deaths >= MAX_QUICK_DEATHS:
            log.error(
                "event=slot_gave_up slot=%d code=%s quick_deaths=%d (each within %.0f s of its "
                "start; see its output above)", slot.number, code, slot.quick_deaths, QUICK_DEATH_S,
            )  # fmt: skip
            self.exit_code = code if code and code > 0 else 1
            return False
        first, ceiling = RESTART_DELAY_S
        delay = min(ceiling, first * 2 ** max(0, slot.quick_deaths - 1))
        slot.restart_at = now + delay
        slot.restarts += 1
        log.warning(
            "event=slot_exited slot=%d code=%s lived_s=%.1f restart_in_s=%.1f",
            slot.number, code, lived, delay,
        )  # fmt: skip
        return True

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (or a slot that cannot start); the exit code."""
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.slots:
                self._start(slot)
            while not self._stopping.is_set():
                now = time.monotonic()
                for slot in self.slots:
                    if slot.popen is not None and slot.popen.poll() is not None:
                        if not self._reap(slot, now):
                            self._stopping.set()
                            break
                    elif (
                        slot.popen is None
                        and slot.restart_at is not None
                        and now >= slot.restart_at
                    ):
                        self._start(slot)
                        log.info(
                            "event=slot_restarted slot=%d restarts=%d", slot.number, slot.restarts
                        )
                self._stopping.wait(0.2)
        finally:
            self._stop_children()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("event=slots_stop slots=%d code=%d", self.count, self.exit_code)
        return self.exit_code

    def _stop_children(self) -> None:
        running = [s for s in self.slots if s.popen is not None and s.popen.poll() is None]
        for slot in running:
            assert slot.popen is not None
            slot.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for slot in running:
            assert slot.popen is not None
            try:
                slot.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("event=slot_killed slot=%d after_s=%.0f", slot.number, self.stop_timeout)
                slot.popen.kill()
                slot.popen.wait(timeout=30)
            log.info("event=slot_stopped slot=%d code=%s", slot.number, slot.popen.returncode)


def gpu_memory_cap_mb() -> int | None:
    """This slot's GPU memory cap in MiB: `EWC_GPU_MEMORY_MB`, else (when it is one of
    several slots) 90 % of the first GPU's memory ÷ the slot count, from nvidia-smi; None:
    no cap (memory growth)."""
    explicit = os.environ.get("EWC_GPU_MEMORY_MB")
    if explicit:
        return int(explicit)
    count = int(os.environ.get("EWC_WORKER_SLOT_COUNT", "1") or 1)
    if count <= 1:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
        total = int(done.stdout.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        log.warning("event=gpu_memory_unknown slots=%d (set EWC_GPU_MEMORY_MB)", count)
        return None
    return int(0.9 * total / count)
