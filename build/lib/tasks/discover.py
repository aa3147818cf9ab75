"""Discover the videos of a corpus: content-addressed ids, manifest metadata, what is left to do.

``video_id`` is the first 16 hex digits of the SHA-256 of the file's bytes, so a renamed or copied
file keeps its id (and its results) and a changed file gets a new one. Hashes are cached in the
store's ``files`` catalog by (path, size, mtime), so an unchanged corpus is not re-read.

``manifest.csv`` at the corpus root (optional) adds metadata per video: a ``path`` column (relative
to the corpus root) and any of ``course, session, teacher, role, lesson_type``.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
)
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("course", "session", "teacher", "role", "lesson_type")
HASH_BLOCK = 1 << 22


@dataclass(frozen=True)
class VideoRef:
    """One video of the corpus, as the flow hands it to extraction (paths, never pixels)."""

    video_id: str
    path: str
    size_bytes: int
    mtime_ns: int
    meta: dict[str, str] = field(default_factory=dict)


def list_videos(corpus: Path) -> list[Path]:
    """Video files under ``corpus`` (recursively, by extension), sorted; hidden files are skipped."""
    corpus = Path(corpus)
    if not corpus.exists():
        raise FileNotFoundError(f"corpus {corpus} does not exist")
    if corpus.is_file():
        return [corpus]
    return sorted(
        p
        for p in corpus.rglob("*")
        if p.suffix.lower() in VIDEO_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(corpus).parts)
    )


def content_id(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()[:16]


def read_manifest(corpus: Path) -> dict[str, dict[str, str]]:
    """Metadata by resolved path from ``<corpus>/manifest.csv``; {} when there is none."""
    path = Path(corpus) / MANIFEST_NAME
    if not Path(corpus).is_dir() or not path.is_file():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "path" not in table.columns:
        raise ValueError(f"{path}: a 'path' column (video path relative to the corpus) is required")
    unknown = [c for c in table.columns if c != "path" and c not in MANIFEST_COLUMNS]
    if unknown:
        raise ValueError(f"{path}: unknown columns {unknown}; allowed: path, {', '.join(MANIFEST_COLUMNS)}")
    out = {}
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        if not row["path"]:
            raise ValueError(f"{path}: row {row_number} has an empty 'path'")
        key = str((Path(corpus) / row["path"]).resolve())
        out[key] = {k: v for k, v in row.items() if k != "path" and v != ""}
    return out


def discover(corpus: Path, known_files: pd.DataFrame) -> tuple[list[VideoRef], pd.DataFrame]:
    """The corpus' videos with their content ids, and the updated ``files`` catalog rows.

    ``known_files`` is the store's ``files`` catalog; a file whose path, size and mtime are unchanged
    keeps its cached id without being read again.
    """
    manifest = read_manifest(corpus)
    cache = {(r.path, int(r.size_bytes), int(r.mtime_ns)): r.video_id for r in known_files.itertuples(index=False)}
    refs, rows = [], []
    for path in list_videos(corpus):
        resolved = str(path.resolve())
        stat = path.stat()
        video_id = cache.get((resolved, stat.st_size, stat.st_mtime_ns)) or content_id(path)
        refs.append(VideoRef(video_id, resolved, stat.st_size, stat.st_mtime_ns, manifest.get(resolved, {})))
        rows.append((resolved, stat.st_size, stat.st_mtime_ns, video_id))
    files = pd.DataFrame(rows, columns=["path", "size_bytes", "mtime_ns", "video_id"])
    return refs, files
