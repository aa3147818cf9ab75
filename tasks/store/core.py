"""The :class:`Store`: one object per store root, made at the flow or CLI boundary and passed as is to
workers. It owns the root, the settings (``store.json``) and permissions, and the partitions' paths; the
concerns live in their own modules and reach it as mixins: the writer lock (:mod:`tasks.store.lease`), the
catalog (:mod:`tasks.store.catalog`), predictions and staleness (:mod:`tasks.store.predictions`), erasure and
retention (:mod:`tasks.store.erasure`).
"""

import json
import os
import stat
import uuid
from pathlib import Path

import fsspec

from tasks.store.catalog import CatalogMixin
from tasks.store.erasure import ErasureMixin
from tasks.store.files import is_remote, location, make_dirs, write_bytes_atomic
from tasks.store.lease import LockMixin
from tasks.store.predictions import PredictionsMixin
from tasks.store.schemas import GROUP_READABLE_MODES, OWNER_ONLY_MODES, SETTINGS_FILE


class Store(LockMixin, CatalogMixin, PredictionsMixin, ErasureMixin):
    """A LessonLens store rooted at a local folder or at a prefix on object storage (:func:`location`).

    ``storage_options``: fsspec options of an object store (an endpoint URL; never credentials).
    """

    def __init__(self, root: "str | os.PathLike | Store", storage_options: dict | None = None):
        self.root = root.root if isinstance(root, Store) else location(root, storage_options)
        self._fragment_seq: dict[str, int] = {}  # last fragment number written by this object, by table

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __fspath__(self) -> str:  # a local Store is accepted wherever a path to its root is
        if self.is_remote:
            raise TypeError(f"store {self.url} is on object storage: it has no local path")
        return str(self.root)

    @property
    def url(self) -> str:
        """The store's location as text: a local folder, or a URL such as ``s3://bucket/prefix``."""
        return str(self.root)

    @property
    def is_remote(self) -> bool:
        return is_remote(self.root)

    def reader_filesystem(self):
        """A filesystem of the store on object storage for a short-lived reader (a DuckDB connection): a new
        instance that caches the listings it makes, so that opening a file answers its size and ETag from the
        listing instead of asking the object store once more per file."""
        options = {**self.storage_options, "use_listings_cache": True, "skip_instance_cache": True}
        return fsspec.filesystem(self.root.protocol, **options)

    @property
    def storage_options(self) -> dict:
        """The fsspec options the store was opened with (none for a local folder)."""
        return dict(self.root.storage_options) if self.is_remote else {}

    def ensure(self, group_readable: bool | None = None) -> "Store":
        """Create the folders and apply the permission policy to the whole store (see the module docstring),
        or raise an error naming the store when it cannot be written.

        ``group_readable``: True / False sets the store's policy (remembered in ``store.json``); None keeps
        the store's current one (owner only for a new store).
        """
        try:
            if self.is_remote:
                bucket = self.root.path.split("/", 1)[0]
                if not self.root.fs.exists(bucket):
                    raise FileNotFoundError(f"bucket {bucket} does not exist")
            else:
                self.root.mkdir(parents=True, exist_ok=True)
            if group_readable is not None and group_readable != self.group_readable:
                self._write_settings({**self._settings(), "group_readable": bool(group_readable)})
            self.apply_permissions()
            for sub in ("catalog", "frames", "body", "work"):
                make_dirs(self.root / sub)
            probe = self.root / f".write-test-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise PermissionError(f"store {self.url} is not writable: {exc}") from exc
        return self

    # settings and permissions ----------------------------------------------------------------
    def _settings(self) -> dict:
        path = self.root / SETTINGS_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def _write_settings(self, settings: dict) -> None:
        write_bytes_atomic(self.root / SETTINGS_FILE, json.dumps(settings, indent=2, sort_keys=True).encode())

    @property
    def group_readable(self) -> bool:
        """Whether the store's files are readable by the folders' group (else by the owner only)."""
        return bool(self._settings().get("group_readable", False))

    @property
    def modes(self) -> tuple[int, int]:
        """(folder mode, file mode) of the store's policy."""
        return GROUP_READABLE_MODES if self.group_readable else OWNER_ONLY_MODES

    def apply_permissions(self, top: Path | None = None) -> int:
        """Give every folder and file under ``top`` (default: the whole store) the policy's modes; a folder's
        setgid bit is kept. Returns how many modes were changed. Symbolic links are left alone. Object storage has
        no modes (its access is the bucket's policy): nothing to do there."""
        if self.is_remote:
            return 0
        folder_mode, file_mode = self.modes
        changed = 0

        def fix(path: str, mode: int) -> None:
            nonlocal changed
            current = os.lstat(path).st_mode
            if stat.S_ISLNK(current):
                return
            wanted = mode | (current & stat.S_ISGID if stat.S_ISDIR(current) else 0)
            if stat.S_IMODE(current) != wanted:
                os.chmod(path, wanted)
                changed += 1

        top = Path(top) if top is not None else self.root
        if top.is_file():
            fix(str(top), file_mode)
            return changed
        fix(str(top), folder_mode)
        for folder, dirs, names in os.walk(top):
            for name in dirs:
                fix(os.path.join(folder, name), folder_mode)
            for name in names:
                fix(os.path.join(folder, name), file_mode)
        return changed

    def umask(self) -> int:
        """The umask that gives new files of this process no more than the policy's modes."""
        return 0o777 & ~self.modes[0]

    def remove_temporary_files(self) -> int:
        """Delete temporary files left by a writer that died before its rename; call under the writer lock.
        (Object storage gets no temporary files: each file is one upload, :func:`models.files.atomic_write`.)"""
        if self.is_remote:
            return 0
        leftovers = [p for p in self.root.rglob(".*.tmp") if p.is_file()]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    # partitions -------------------------------------------------------------------------------
    def partition(self, table: str, video_id: str) -> Path:
        return self.root / table / f"video_id={video_id}" / "part-0.parquet"

    def has_partition(self, table: str, video_id: str) -> bool:
        return self.partition(table, video_id).is_file()

    def video_ids(self, table: str = "frames") -> list[str]:
        """Videos with a partition of ``table``, sorted."""
        files = sorted((self.root / table).glob("video_id=*/part-0.parquet"))
        return [f.parent.name.split("=", 1)[1] for f in files]

    def work_dir(self, video_id: str, params_key: str | None = None) -> Path:
        """Chunk fragments of a video being extracted with the parameters ``params_key`` (all of them: None)."""
        folder = self.root / "work" / video_id
        return folder / params_key if params_key else folder

    def reports_dir(self) -> Path:
        return self.root / "reports"
