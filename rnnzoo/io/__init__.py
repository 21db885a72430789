"""Small file helpers shared by training, saving, export and the runtime (TF-free).

Everything that writes does so atomically (temporary name, then rename), so a crash or a full
disk never leaves a half-written artifact behind, and the last good version stays in place.
What is written follows the process umask (``tempfile`` alone would make it private), and a full
disk or a permission problem becomes one ``StorageError`` naming the path.

The rest guards what is read or removed: ``verify_files`` checks a manifest's paths as well as
its digests, ``unlisted_files`` finds files a manifest does not cover, ``check_removable_run_dir``
/ ``check_removable_bundle_dir`` keep ``--overwrite`` from deleting anything that is not ours,
and ``lock_directory`` keeps two writers out of one directory.

The package, by role: ``storage`` (storage errors, the umask, atomic writes), ``verify``
(reading JSON and checking manifests) and ``dirs`` (what ``--overwrite`` may remove, locks).
"""

from __future__ import annotations

from rnnzoo.io.dirs import (
    BUNDLE_DIR_NAMES,
    LOCK_FILE,
    LOCK_INFO_FILE,
    PRESET_DIR_NAMES,
    RUN_DIR_MARKERS,
    RUN_DIR_NAMES,
    LockError,
    atomic_directory,
    check_removable_bundle_dir,
    check_removable_dir,
    check_removable_preset_dir,
    check_removable_run_dir,
    empty_directory,
    lock_directory,
)
from rnnzoo.io.storage import (
    StorageError,
    atomic_write_bytes,
    atomic_write_many,
    atomic_write_text,
    current_umask,
    ensure_directory,
    save_figure,
    storage_errors,
)
from rnnzoo.io.verify import read_json, resolve_member, sha256_file, unlisted_files, verify_files

__all__ = [
    "BUNDLE_DIR_NAMES",
    "LOCK_FILE",
    "LOCK_INFO_FILE",
    "LockError",
    "PRESET_DIR_NAMES",
    "RUN_DIR_MARKERS",
    "RUN_DIR_NAMES",
    "StorageError",
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_many",
    "atomic_write_text",
    "check_removable_bundle_dir",
    "check_removable_dir",
    "check_removable_preset_dir",
    "check_removable_run_dir",
    "current_umask",
    "empty_directory",
    "ensure_directory",
    "lock_directory",
    "read_json",
    "resolve_member",
    "save_figure",
    "sha256_file",
    "storage_errors",
    "unlisted_files",
    "verify_files",
]
