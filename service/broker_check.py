"""The broker part of ``/healthz``: one bounded check at a time, its answer shared for a second.

Probes poll ``/healthz`` often and expect an answer within a second, broker down or not. A dead
broker costs a refused connection, but a frozen one (a stopped server, a partition, a failover that
keeps the address) answers nothing: kombu and redis-py wait forever by default and retry on top. So the
check connects once, with socket timeouts, in a thread of its own (a hung check never holds the
threads every other request runs in), and each request waits for it at most :data:`DEADLINE_S`;
past that it answers "did not answer". One check runs at a time and its answer is reused for
:data:`FRESH_S`, so a hundred pollers cost one connection a second, and a hung check is never doubled.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from celery import Celery

from roadnet.queue import broker_folder, is_embedded
from roadnet.settings import Settings
from service.schemas import CheckPublic

#: The longest a request waits for the broker's answer, and the socket timeouts of one check.
DEADLINE_S = 0.5
#: How long a finished check's answer is reused.
FRESH_S = 1.0


def check_broker_once(settings: Settings, celery: Celery, timeout_s: float = DEADLINE_S) -> CheckPublic:
    """Connect to the broker once, without retries, each socket operation bounded by ``timeout_s``."""
    if is_embedded(settings):
        ok = os.access(broker_folder(settings) / "queue", os.W_OK)
        return CheckPublic(ok=ok, detail="embedded queue " + ("writable" if ok else "not writable"))
    bounded = {"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s}
    with celery.connection_for_write(transport_options=bounded) as conn:
        try:
            conn.ensure_connection(max_retries=0, timeout=timeout_s)
        except Exception as exc:  # kombu raises its transport's own connection errors
            return CheckPublic(
                ok=False, detail=f"{conn.transport_cls} broker unreachable ({type(exc).__name__})"
            )
        return CheckPublic(ok=True, detail=f"{conn.transport_cls} broker reachable")


class BrokerCheck:
    """The broker's health for ``/healthz``, bounded in time and shared between concurrent callers.

    Thread futures rather than asyncio ones: the check outlives the request (and, under a test client,
    the event loop) that started it.
    """

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self.settings, self.celery = settings, celery
        # One thread: checks never run side by side, and a hung one holds only this thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-check")
        self._lock = threading.Lock()
        self._running: Future[CheckPublic] | None = None
        self._answer: CheckPublic | None = None
        self._answered_at = -float("inf")

    async def __call__(self) -> CheckPublic:
        """The broker's state as of at most :data:`FRESH_S` ago, or "no answer" after :data:`DEADLINE_S`."""
        with self._lock:
            if self._answer is not None and time.monotonic() - self._answered_at < FRESH_S:
                return self._answer
            running = self._running
            started = running is None
            if running is None:
                running = self._running = self._executor.submit(check_broker_once, self.settings, self.celery)
        if started:
            # Outside the lock: a check already done calls _keep at once, in this thread.
            running.add_done_callback(self._keep)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(running)), DEADLINE_S)
        except TimeoutError:
            # The check goes on in its thread; the next request waits on the same one.
            kind = "embedded queue" if is_embedded(self.settings) else "broker"
            return CheckPublic(ok=False, detail=f"{kind} did not answer within {DEADLINE_S} s")
        except Exception as exc:  # a failed check is an unhealthy broker, not a 500
            return self._failed(exc)

    def _keep(self, done: Future[CheckPublic]) -> None:
        error = None if done.cancelled() else done.exception()
        answer = None if done.cancelled() else (self._failed(error) if error else done.result())
        with self._lock:
            self._running = None
            if answer is not None:
                self._answer, self._answered_at = answer, time.monotonic()

    @staticmethod
    def _failed(error: BaseException) -> CheckPublic:
        # The error's text may name the broker's address: only its type is said.
        return CheckPublic(ok=False, detail=f"broker check failed ({type(error).__name__})")

    def close(self) -> None:
        """Stop the check's thread (a hung check is left to end on its socket timeouts)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
