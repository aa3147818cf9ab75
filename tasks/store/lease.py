"""One writer at a time: the store's single-writer lock.

On a local store an exclusive ``flock`` on ``<store>/.lock`` (released by the OS when the holder dies); on
object storage a :class:`Lease` object made with a conditional create and renewed while the run lives.
:class:`LockMixin` gives :class:`tasks.store.Store` its ``writer_lock`` and ``check_not_busy``.
"""

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from upath import UPath


class StoreBusy(RuntimeError):
    """Another run is writing the same store."""


LEASE_FILE = ".lease.json"

LEASE_SECONDS = 60.0  # how long a writer's lease on an object-storage store lasts without renewal

log = logging.getLogger(__name__)


def lease_seconds() -> float:
    """How long a writer's lease on object storage lasts unrenewed: ``LESSONLENS_STORE_LEASE_SECONDS``, else 60."""
    return float(os.environ.get("LESSONLENS_STORE_LEASE_SECONDS", LEASE_SECONDS))


def precondition_failed(exc: OSError) -> bool:
    """Whether the object store refused a conditional write (S3's 412 PreconditionFailed, which s3fs raises as
    FileExistsError for If-None-Match and as a plain OSError for If-Match)."""
    response = getattr(exc.__cause__, "response", None) or {}
    return isinstance(exc, FileExistsError) or response.get("Error", {}).get("Code") == "PreconditionFailed"


class Lease:
    """The single-writer lock of a store on object storage, where no OS lock reaches every writer: the object
    ``<store>/.lease.json`` names its owner and when it expires.

    Taken with a conditional create (S3 ``If-None-Match: *``), so of two writers one gets it; renewed by a
    thread every third of ``seconds`` with an overwrite conditional on the ETag it wrote last (``If-Match``);
    another writer takes it over only once it has expired (a writer killed without releasing it), with an
    overwrite conditional on the expired lease's ETag, so that of two takers one wins; deleted at the end.
    Expiry is judged by the clocks of the writers' machines (keep them in sync, e.g. NTP). ``If-Match`` is
    S3's: on gs:// and az:// renewal and takeover overwrite without the condition.
    """

    def __init__(self, path: UPath, owner: str, seconds: float):
        self.path, self.owner, self.seconds = path, owner, seconds
        self.fs = path.fs
        self.etag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        expires = time.time() + self.seconds
        return json.dumps({"owner": self.owner, "pid": os.getpid(), "host": socket.gethostname(),
                           "expires_at": expires}).encode()  # fmt: skip

    def _put(self, **condition) -> None:
        if condition.get("IfMatch") and self.fs.protocol[0] != "s3":
            condition = {}
        out = self.fs.pipe_file(self.path.path, self._body(), **condition)
        self.etag = (out or {}).get("ETag") or self.fs.info(self.path.path).get("ETag")

    def holder(self) -> tuple[dict, str] | None:
        """(the lease's content, its ETag), or None when there is none."""
        try:
            etag = self.fs.info(self.path.path).get("ETag")
            return json.loads(self.fs.cat_file(self.path.path)), etag
        except FileNotFoundError:
            return None

    def busy_error(self, holder: dict) -> StoreBusy:
        until = datetime.fromtimestamp(holder["expires_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return StoreBusy(
            f"store {self.path.parent} is being written by {holder['owner']} (pid {holder['pid']} on "
            f"{holder['host']}; its lease runs until {until} unless renewed); wait for that run to finish, or for "
            "its lease to expire if it died, or use another store"
        )

    def check(self) -> None:
        """Raise StoreBusy when a lease is held and has not expired."""
        held = self.holder()
        if held is not None and held[0]["expires_at"] > time.time():
            raise self.busy_error(held[0])

    def acquire(self) -> None:
        try:
            self._put(mode="create")
        except FileExistsError:
            held = self.holder()
            if held is None:  # released meanwhile
                return self.acquire()
            if held[0]["expires_at"] > time.time():
                raise self.busy_error(held[0]) from None
            try:
                self._put(IfMatch=held[1])
            except OSError as exc:
                if not precondition_failed(exc):
                    raise
                raise StoreBusy(f"store {self.path.parent}: another run took over the expired lease first") from None
            log.warning("store lease of %s (expired) taken over by %s", held[0]["owner"], self.owner)
        self._renewer = threading.Thread(target=self._renew, name="store-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self._put(IfMatch=self.etag)
            except OSError as exc:
                if precondition_failed(exc):  # it expired and another run took it over
                    self.lost = str(exc)
                    log.error("store lease of %s lost: %s", self.owner, self.lost)
                    return
                log.warning("store lease of %s not renewed this time (tried again later): %s", self.owner, exc)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        held = self.holder()
        if held is not None and held[1] == self.etag:
            self.fs.rm_file(self.path.path)
        elif not self.lost:  # taken over before the renewer noticed (e.g. the process was paused meanwhile)
            self.lost = f"now held by {held[0]['owner']}" if held else "the lease object is gone"
        if self.lost:
            raise StoreBusy(f"store {self.path.parent}: the writer's lease was lost during the run ({self.lost})")


# stores whose lock this context holds to hand over (``writer_lock(hand_over=True)``): url -> renames the owner
_HANDED: ContextVar[dict[str, Callable[[str], None]] | None] = ContextVar("lessonlens_handed_locks", default=None)


class LockMixin:
    """The single-writer lock of :class:`tasks.store.Store` (a mixin: it uses the store's ``root``, ``modes`` and
    ``umask``)."""

    @contextmanager
    def writer_lock(self, owner: str, hand_over: bool = False) -> Iterator[None]:
        """Hold the store's single-writer lock for the duration of a run, or raise StoreBusy.

        An exclusive ``flock`` on ``<store>/.lock``: the operating system releases it when the holding
        process ends, even by ``kill -9``, so a crashed run never leaves a stale lock. (flock is reliable on
        local disks; on network file systems use one store per writer.) On object storage: a :class:`Lease`.

        ``hand_over``: the first ``writer_lock`` of the same store entered inside this one, in the same context,
        takes it over instead of being refused, and names its own owner from then on. ``lessonlens run`` holds
        the lock from its look for work through the first chunks it starts while the Prefect API starts, and
        hands it to the flow's run without a moment unlocked. Any other writer, in this process or another, is
        refused as ever.
        """
        handed = _HANDED.get() or {}
        if self.url in handed:
            handed[self.url](owner)
            token = _HANDED.set({url: rename for url, rename in handed.items() if url != self.url})
            try:
                yield
            finally:
                _HANDED.reset(token)
            return
        if self.is_remote:
            lease = Lease(self.root / LEASE_FILE, owner, lease_seconds())
            lease.acquire()
            try:
                with self._handing_over(hand_over, lambda name: setattr(lease, "owner", name)):  # renewed with it
                    yield
            finally:
                lease.release()
            return
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, self.modes[1])
        with open(fd, "a+") as fh:
            self._lock(fh)

            def name(text: str) -> None:
                fh.seek(0)
                fh.truncate()
                since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                fh.write(f"{text} (pid {os.getpid()} on {socket.gethostname()}, since {since})")
                fh.flush()

            name(owner)
            # files made by this process and the local workers it starts meanwhile follow the store's policy
            previous_umask = os.umask(self.umask())
            try:
                with self._handing_over(hand_over, name):
                    yield
            finally:
                os.umask(previous_umask)
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def _handing_over(self, hand_over: bool, rename: Callable[[str], None]) -> Iterator[None]:
        if not hand_over:
            yield
            return
        token = _HANDED.set({**(_HANDED.get() or {}), self.url: rename})
        try:
            yield
        finally:
            _HANDED.reset(token)

    def check_not_busy(self) -> None:
        """Raise StoreBusy now when another run holds the writer lock (to fail before starting anything)."""
        if self.is_remote:
            Lease(self.root / LEASE_FILE, "", lease_seconds()).check()
            return
        if (self.root / ".lock").is_file():
            with open(self.root / ".lock", "a+") as fh:
                self._lock(fh)
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _lock(self, fh) -> None:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise StoreBusy(
                f"store {self.root} is being written by {holder}; wait for that run to finish or use another store"
            ) from None
