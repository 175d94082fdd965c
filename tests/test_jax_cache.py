"""The JAX adapter's persistent compilation cache: held to its size by one scan as a process
starts, never by JAX's per-write rescan."""

from __future__ import annotations

import os

from tests.optional import need


def _entry(path, key: str, size: int, when: float, atime_file: bool = False) -> str:
    file = path / f"{key}-cache"
    file.write_bytes(b"x" * size)
    os.utime(file, (when, when))
    if atime_file:
        (path / f"{key}-atime").write_bytes(b"\0" * 8)
    return file.name


def test_prune_drops_least_recently_used_until_under_the_limit(tmp_path):
    jb = need("backends.jax_backend")
    old = _entry(tmp_path, "old", 400, 1_000, atime_file=True)
    mid = _entry(tmp_path, "mid", 400, 2_000)
    new = _entry(tmp_path, "new", 400, 3_000)
    assert sorted(os.listdir(tmp_path)) == sorted([old, "old-atime", mid, new])
    jb._prune(str(tmp_path), 900)
    assert sorted(os.listdir(tmp_path)) == sorted([mid, new])  # old and its marker went
    jb._prune(str(tmp_path), 400)
    assert os.listdir(tmp_path) == [new]
    jb._prune(str(tmp_path), 400)  # already within the limit: nothing more goes
    assert os.listdir(tmp_path) == [new]


def test_prune_of_a_missing_directory_does_nothing(tmp_path):
    jb = need("backends.jax_backend")
    jb._prune(str(tmp_path / "absent"), 0)
    assert not (tmp_path / "absent").exists()


def test_cache_on_leaves_jax_unbounded_and_prunes_at_start(tmp_path, monkeypatch):
    jb = need("backends.jax_backend")
    jax = need("jax")
    _entry(tmp_path, "stale", 64, 1_000)
    kept = _entry(tmp_path, "fresh", 64, 2_000)
    monkeypatch.setenv("TOUCHSTONE_JAX_CACHE", str(tmp_path))
    monkeypatch.setattr(jb, "_CACHE_BYTES", 100)
    before = (jax.config.jax_compilation_cache_dir,
              jax.config.jax_persistent_cache_min_compile_time_secs)
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        assert jb._persistent_cache() == str(tmp_path)
        assert jax.config.jax_compilation_cache_max_size == -1  # no rescan on each write
        assert os.listdir(tmp_path) == [kept]
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
