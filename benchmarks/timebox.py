"""Time-boxed measurements in a child process: a row that overruns is killed and reported as
skipped, and the remaining rows go on in a fresh child.

The parent runs ``python <script> --worker <json>``; the child announces each row
(``@@{"event": "start", "id": ...}``) and its result (``@@{"event": "row", "row": {...}}``) on
stdout, one JSON line each. Everything else the child prints goes to the log file.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO

PREFIX = "@@"


def emit(event: str, **fields) -> None:
    """Child side: one protocol line."""
    print(PREFIX + json.dumps({"event": event, **fields}, default=str), flush=True)


def skipped(row: dict, why: str) -> dict:
    return {**row, "status": "skipped", "note": why}


def _pump(stream: IO[str], lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _kill(proc: subprocess.Popen) -> None:
    """The child and whatever it started (compile workers, DataLoader workers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_rows(
    script: str,
    spec: dict,
    rows: list[dict],
    deadline: float,
    row_box: Callable[[dict], float],
    log: IO[str],
) -> list[dict]:
    """Measure ``rows`` in child processes of ``script`` before ``deadline`` (``time.time()``).

    Args:
        script: the script whose ``--worker`` mode measures rows.
        spec: settings passed to every child (with ``rows`` and ``deadline`` added).
        rows: the rows to measure, each with a unique ``id``.
        deadline: when the part's time box ends; rows not finished by then are skipped.
        row_box: the longest one row may take (seconds).
        log: where the children's own output goes.

    Returns:
        One result per row, in the order of ``rows`` (``status``: ok, failed or skipped).
    """
    results: dict[str, dict] = {}
    pending = [r for r in rows]
    while pending:
        if time.time() >= deadline:
            break
        payload = json.dumps({**spec, "rows": pending, "deadline": deadline})
        proc = subprocess.Popen(
            [sys.executable, script, "--worker", payload], stdout=subprocess.PIPE, stderr=log,
            text=True, start_new_session=True,
        )  # fmt: skip
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        current, started, progressed = None, time.time(), False
        while True:
            limit = deadline if current is None else min(deadline, started + row_box(current))
            try:
                line = lines.get(timeout=max(0.05, limit - time.time()))
            except queue.Empty:
                _kill(proc)
                if current is not None:
                    box = min(row_box(current), deadline - started)
                    results[current["id"]] = skipped(
                        current, f"stopped after its {box:.0f} s time box"
                    )
                    pending.remove(current)
                break
            if line is None:  # the child exited
                rc = proc.wait()
                if current is not None:
                    results[current["id"]] = {
                        **current,
                        "status": "failed",
                        "note": f"worker died (exit {rc}); see the log",
                    }
                    pending.remove(current)
                elif not progressed:  # died before its first row: it would die again
                    for row in pending:
                        results[row["id"]] = {
                            **row,
                            "status": "failed",
                            "note": f"worker failed to start (exit {rc}); see the log",
                        }
                    pending = []
                break
            if not line.startswith(PREFIX):
                log.write(line)
                continue
            msg = json.loads(line[len(PREFIX) :])
            progressed = True
            if msg["event"] == "start":
                current = next(r for r in pending if r["id"] == msg["id"])
                started = time.time()
            elif msg["event"] == "row":
                row = msg["row"]
                results[row["id"]] = row
                pending = [r for r in pending if r["id"] != row["id"]]
                current = None
        log.flush()
    for row in pending:
        results.setdefault(row["id"], skipped(row, "the part's time box ran out before it"))
    return [results[r["id"]] for r in rows]


def worker_loop(rows: Iterable[dict], deadline: float, need: Callable[[dict], float],
                measure: Callable[[dict], dict], cleanup: Callable[[], None]) -> None:  # fmt: skip
    """Child side: measure rows in order, skipping those that could not finish in time."""
    for row in rows:
        if time.time() + need(row) > deadline:
            emit("row", row=skipped(row, "not enough time left in the part's time box"))
            continue
        emit("start", id=row["id"])
        try:
            result = {**row, **measure(row), "status": "ok"}
        except Exception as err:  # noqa: BLE001 (reported in the table, the next row goes on)
            text = str(err).strip().splitlines()
            result = {
                **row,
                "status": "failed",
                "note": f"{type(err).__name__}: {text[0][:160] if text else ''}",
            }
        emit("row", row=result)
        cleanup()
