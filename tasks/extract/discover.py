"""Discover the videos of a corpus: content-addressed ids, manifest metadata, what is left to do.

``video_id`` is the first 16 hex digits of the SHA-256 of the file's bytes, so a renamed or copied
file keeps its id (and its results) and a changed file gets a new one. Hashes are cached in the
store's ``files`` catalog by (path, size, mtime), so an unchanged corpus is not re-read.

A corpus on object storage (``s3://bucket/lessons/``, :func:`tasks.store.location`) is listed in one
listing; its objects are hashed while they are streamed (an ETag is no content hash: multipart uploads and
KMS encryption change it) and the cache keys on (URL, size, version id or ETag). Workers decode a local
copy (:func:`local_video`): streamed to their scratch folder, checked against the id while streaming,
kept while its chunks run on that worker and removed when the scratch space, bounded by
``LESSONLENS_SCRATCH_BYTES`` (default 20 GB), needs room, or when the worker ends.

Any file name the OS allows is handled: a name that is not UTF-8 is kept as Python's ``surrogateescape`` text
to open the file (decoders read it through a link named by its id, :func:`local_video`) and written with
``\\xNN`` escapes wherever it is recorded (``tasks.store.path_text``). Every entry named like a video that is not
a readable regular file (a directory, a FIFO, a dangling or looping link, no permission) is returned as
unreadable with the reason, never skipped in silence.

``manifest.csv`` at the corpus root (optional) adds metadata per video: a ``path`` column (relative
to the corpus root) and any of ``course, session, teacher, role, lesson_type``.
"""

import errno
import hashlib
import os
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tasks.extract.decode import VideoError
from tasks.store import is_remote, location, path_text

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
)
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("course", "session", "teacher", "role", "lesson_type")
HASH_BLOCK = 1 << 22
SCRATCH_BYTES = 20 * 10**9  # default bound of a worker's scratch copies of videos on object storage


@dataclass(frozen=True)
class VideoRef:
    """One video of the corpus, as the flow hands it to extraction (paths, never pixels)."""

    video_id: str
    path: str
    size_bytes: int
    mtime_ns: int
    meta: dict[str, str] = field(default_factory=dict)


def is_video(relative: str) -> bool:
    """Whether a file at ``relative`` (to the corpus root) is a video to analyse: by extension, not hidden."""
    parts = Path(relative).parts
    return Path(relative).suffix.lower() in VIDEO_EXTENSIONS and not any(p.startswith(".") for p in parts)


def list_objects(corpus) -> list[tuple[object, int, int, str]]:
    """(path, size, mtime_ns, version id or ETag) of the videos under a corpus on object storage, in one listing."""
    if not corpus.exists():
        raise FileNotFoundError(f"corpus {corpus} does not exist")
    fs = corpus.fs
    found = {corpus.path: fs.info(corpus.path)} if fs.isfile(corpus.path) else fs.find(corpus.path, detail=True)
    return [
        (corpus if key == corpus.path else corpus / key[len(corpus.path) :].lstrip("/"), int(info["size"]),
         int(info["LastModified"].timestamp() * 1e9), info.get("VersionId") or info.get("ETag") or "")
        for key, info in sorted(found.items())
        if info["type"] == "file" and (key == corpus.path or is_video(key[len(corpus.path) :].lstrip("/")))
    ]  # fmt: skip


def list_videos(corpus: Path) -> list[Path]:
    """Entries under ``corpus`` (recursively) named like a video, sorted; hidden ones are skipped. Not only
    regular files: a directory, a FIFO or a dangling or looping link named ``*.mp4`` is listed too, so that
    :func:`discover` names it instead of skipping it silently."""
    corpus = Path(corpus)
    if not corpus.exists():
        raise FileNotFoundError(f"corpus {corpus} does not exist")
    if corpus.is_file():
        return [corpus]
    return sorted(p for p in corpus.rglob("*") if is_video(str(p.relative_to(corpus))))


def not_a_video_file(path: Path) -> str | None:
    """Why the entry at ``path`` cannot be read as a video file (a message naming it), or None for a regular
    file. Never opens it (a FIFO would block)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # removed since listed, a broken mount, a dangling or looping link
        what = "a dangling symbolic link" if path.is_symlink() and exc.errno == errno.ENOENT else None
        what = what or ("a symbolic link loop" if exc.errno == errno.ELOOP else None)
        return f"{path_text(path)}: cannot read the file ({what or exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))  # fmt: skip
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"{path_text(path)}: cannot read the file (named like a video, but {kind})"


def content_id(path: Path, copy_to: Path | None = None) -> str:
    """The video id of the file at ``path`` (local, or on object storage: streamed), written to ``copy_to`` on
    the way when given."""
    digest = hashlib.sha256()
    with location(path, what="video").open("rb") as fh, open(copy_to, "wb") if copy_to else nullcontext() as out:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
            if out:
                out.write(block)
    return digest.hexdigest()[:16]


def read_manifest(corpus) -> dict[str, dict[str, str]]:
    """Metadata by resolved path (URL on object storage) from ``<corpus>/manifest.csv``; {} when there is none."""
    corpus = location(corpus, what="corpus")
    path = corpus / MANIFEST_NAME
    if not corpus.is_dir() or not path.is_file():
        return {}
    with path.open("rb") as fh:
        table = pd.read_csv(fh, dtype=str, keep_default_na=False)
    if "path" not in table.columns:
        raise ValueError(f"{path}: a 'path' column (video path relative to the corpus) is required")
    unknown = [c for c in table.columns if c != "path" and c not in MANIFEST_COLUMNS]
    if unknown:
        raise ValueError(f"{path}: unknown columns {unknown}; allowed: path, {', '.join(MANIFEST_COLUMNS)}")
    out = {}
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        if not row["path"]:
            raise ValueError(f"{path}: row {row_number} has an empty 'path'")
        video = corpus / row["path"]
        key = str(video if is_remote(video) else video.resolve())
        out[key] = {k: v for k, v in row.items() if k != "path" and v != ""}
    return out


def discover(
    corpus, known_files: pd.DataFrame, storage_options: dict | None = None
) -> tuple[list[VideoRef], pd.DataFrame, list[tuple[str, str]]]:
    """The corpus' videos with their content ids, the updated ``files`` catalog rows, and the files that
    could not be read (path, message naming it and why): one unreadable file never stops the others.

    ``corpus``: a folder, or a URL on object storage opened with ``storage_options``. ``known_files`` is the
    store's ``files`` catalog; a file whose path, size and mtime (on object storage: version id or ETag) are
    unchanged keeps its cached id without being read again.
    """
    corpus = location(corpus, storage_options, what="corpus")
    manifest = read_manifest(corpus)
    cache = {
        (r.path, int(r.size_bytes), r.version if isinstance(r.version, str) else int(r.mtime_ns)): r.video_id
        for r in known_files.itertuples(index=False)
    }
    unreadable: list[tuple[str, str]] = []
    if is_remote(corpus):
        found = [(path, str(path), size, mtime_ns, version) for path, size, mtime_ns, version in list_objects(corpus)]
    else:
        found = []
        for path in list_videos(corpus):
            if (why := not_a_video_file(path)) is not None:
                unreadable.append((str(path.absolute()), why))
                continue
            st = path.stat()
            found.append((path, str(path.resolve()), st.st_size, st.st_mtime_ns, None))
    refs, rows = [], []
    for path, name, size, mtime_ns, version in found:
        try:
            video_id = cache.get((path_text(name), size, version or mtime_ns)) or content_id(path)
        except OSError as exc:  # no read permission, an I/O error, an object removed since the listing
            unreadable.append((name, f"{path_text(name)}: cannot read the file ({exc.strerror or exc})"))
            continue
        refs.append(VideoRef(video_id, name, size, mtime_ns, manifest.get(name, {})))
        rows.append((path_text(name), size, mtime_ns, video_id, version))
    files = pd.DataFrame(rows, columns=["path", "size_bytes", "mtime_ns", "video_id", "version"])
    return refs, files, unreadable


_SCRATCH: "OrderedDict[str, tuple[Path, int]]" = OrderedDict()  # video id → (local copy, bytes), oldest first
_SCRATCH_USERS: dict[str, int] = {}
_SCRATCH_LOCK = threading.Lock()


def scratch_folder() -> Path:
    """This process' scratch folder: under the Dask worker's local directory (removed with the worker), else
    the system's temporary folder."""
    try:
        from distributed import get_worker

        base = get_worker().local_directory
    except (ImportError, ValueError):
        base = tempfile.gettempdir()
    folder = Path(base) / f"lessonlens-scratch-{os.getpid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@contextmanager
def local_video(path: str, video_id: str, storage_options: dict | None = None) -> Iterator[str]:
    """A local file of the video at ``path``: ``path`` itself on a local disk; on object storage a copy streamed
    to this worker's scratch folder (:func:`scratch_folder`), hashed on the way and refused (ValueError) when
    its content is not ``video_id`` any more. The copy is kept for the video's other chunks on this worker
    while the copies stay under ``LESSONLENS_SCRATCH_BYTES``; the oldest unused ones are removed to make room."""
    source = location(path, storage_options, what="corpus")
    if not is_remote(source):
        if path_text(path) == path:
            yield path
            return
        # a name that is not UTF-8: the decoders take UTF-8 paths, so they read it through a link named by its id
        with tempfile.TemporaryDirectory(dir=scratch_folder()) as folder:
            alias = Path(folder) / f"{video_id}{Path(path_text(path)).suffix}"
            os.symlink(os.fsencode(path), alias)
            yield str(alias)
        return
    limit = int(os.environ.get("LESSONLENS_SCRATCH_BYTES", SCRATCH_BYTES))
    with _SCRATCH_LOCK:
        _SCRATCH_USERS[video_id] = _SCRATCH_USERS.get(video_id, 0) + 1
        copy = _SCRATCH.get(video_id)
        if copy is not None:
            _SCRATCH.move_to_end(video_id)
    try:
        if copy is None or not copy[0].is_file():
            copy = _fetch(source, video_id, limit)
        yield str(copy[0])
    finally:
        with _SCRATCH_LOCK:
            _SCRATCH_USERS[video_id] -= 1


def _fetch(source, video_id: str, limit: int) -> tuple[Path, int]:
    size = source.fs.size(source.path)
    with _SCRATCH_LOCK:  # make room: the oldest copies no chunk is reading now
        for old in [v for v in _SCRATCH if _SCRATCH_USERS.get(v, 0) == 0 and v != video_id]:
            if sum(s for _, s in _SCRATCH.values()) + size <= limit:
                break
            _SCRATCH.pop(old)[0].unlink(missing_ok=True)
    target = scratch_folder() / f"{video_id}{Path(source.path).suffix}"
    partial = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        got = content_id(source, copy_to=partial)
        if got != video_id:
            message = f"corpus file {source}: changed since it was discovered (id {got}, expected {video_id})"
            raise VideoError("changed_file", message + "; the next run picks up the new content")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    with _SCRATCH_LOCK:
        _SCRATCH[video_id] = (target, size)
    return target, size
