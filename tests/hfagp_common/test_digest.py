"""hfagp_common.digest: the streamed SHA-256 of a file equals hashlib's over all its bytes."""

from __future__ import annotations

import hashlib

from hfagp_common.digest import sha256_file


def test_sha256_file_streams_past_one_block(tmp_path):
    data = bytes(range(256)) * ((3 << 20) // 256 + 7)  # a bit over three 1 MiB blocks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == sha256_file(path)
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()
