"""Download a file once into a cache folder, check it, and unpack it atomically.

    from tinynet import download
    folder = download.fetch("https://example.org/data.tgz", sha256="9f86d0...", size=1234)

What ``fetch`` guarantees, in order:

1. If the unpacked folder (or, for a plain file, the file) is already in the cache, it is
   returned at once: nothing is downloaded twice.
2. The file is streamed to ``NAME.part`` with a tqdm bar.  Any failure on the way (no
   network, a dropped connection, Ctrl-C) deletes the ``.part`` file and raises; without a
   network the error says so and how to do without (``hint``).
3. Its byte size and checksum (SHA-256, or MD5 where a publisher only gives that) are
   checked; on a mismatch the file is deleted and the error names both values.  Only then
   is it renamed to NAME: a file under its final name is always a checked one.
4. An archive (.tar, .tar.gz, .tgz, .zip) is unpacked into a temporary folder beside the
   final one, which is renamed into place only when everything is out (``os.replace`` is
   atomic on one file system).  A truncated or corrupt archive leaves no folder behind.

The cache is ``$TINYNET_CACHE`` if set, else ``~/.cache/tinynet``.
"""
import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def cache_dir():
    """$TINYNET_CACHE, or ~/.cache/tinynet."""
    return os.environ.get("TINYNET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                           "tinynet")


def _archive_stem(filename):
    for suffix in ARCHIVE_SUFFIXES:
        if filename.lower().endswith(suffix):
            return filename[:-len(suffix)]
    return None


def file_digest(path, algorithm="sha256", chunk=1 << 20):
    """Hex digest of the file at ``path``, read a MiB at a time."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url, sha256=None, size=None, cache_dir=None, filename=None, md5=None, unpack=True,
          progress=True, timeout=30, hint=None):
    """The path of ``url``'s file in the cache (downloaded, checked and, for an archive,
    unpacked into a folder named after it, e.g. data.tgz -> data/).

    sha256, md5  the expected checksum (hex); at least one is required, so nothing unchecked
                 is ever used
    size         the expected size in bytes (checked before the checksum; optional)
    cache_dir    where to keep it (default: ``cache_dir()``)
    filename     the name to store it under (default: the last part of the URL)
    unpack       False: keep an archive as it is and return the file's path
    hint         what to tell the user when the download fails (e.g. "pass --data DIR")
    """
    if sha256 is None and md5 is None:
        raise ValueError("fetch: give sha256 (or md5) of the file, so that it can be checked")
    folder = os.fspath(cache_dir if cache_dir is not None else globals()["cache_dir"]())
    filename = filename or os.path.basename(urllib.request.urlparse(url).path)
    if not filename:
        raise ValueError(f"fetch: cannot tell a file name from url {url!r}; pass filename=")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, filename)
    stem = _archive_stem(filename) if unpack else None
    target = os.path.join(folder, stem) if stem else path
    if os.path.exists(target):
        return target
    if not os.path.exists(path):
        _download(url, path, size, timeout, progress, hint)
        try:
            _check(path + ".part", size, sha256, md5)
        except ValueError:
            os.remove(path + ".part")
            raise
        os.replace(path + ".part", path)
    if stem:
        _unpack(path, target)
    return target


def _download(url, path, size, timeout, progress, hint):
    from tqdm.auto import tqdm
    part = path + ".part"
    advice = hint or (f"download {url} yourself and put it at '{path}' "
                      "(it is checked and unpacked from there)")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = response.headers.get("Content-Length")
            total = int(total) if total is not None else size
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=os.path.basename(path), disable=not progress) as bar:
                received = 0
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
        if total is not None and received < total:      # the server closed early
            raise http.client.IncompleteRead(b"", total - received)
    except http.client.IncompleteRead as exc:
        _remove(part)
        raise ConnectionError(f"download of {url} was cut off ({exc.expected} bytes "
                              "missing); nothing was kept, try again") from exc
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        _remove(part)
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"cannot download {url}: {reason}. No network? Then "
                              f"{advice}.") from exc
    except BaseException:                    # Ctrl-C, a full disk, ...: no half file stays
        _remove(part)
        raise


def _check(path, size, sha256, md5):
    actual = os.path.getsize(path)
    name = os.path.basename(path)[:-len(".part")]
    if size is not None and actual != size:
        raise ValueError(f"download of '{name}' is {actual} bytes, expected {size} (interrupted "
                         "or changed on the server); it was deleted, try again")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            digest = file_digest(path, algorithm)
            if digest != expected.lower():
                raise ValueError(f"download of '{name}' has {algorithm} {digest}, expected "
                                 f"{expected}; it was deleted (corrupt, or the file changed "
                                 "on the server)")


def _unpack(archive, target):
    """Unpack into a temporary sibling of ``target``, then rename it into place."""
    parent = os.path.dirname(target)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".", dir=parent)
    try:
        if archive.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                if hasattr(tarfile, "data_filter"):  # refuses absolute paths, '..', devices
                    t.extractall(tmp, filter="data")
                else:
                    t.extractall(tmp)
        inner = os.listdir(tmp)
        # an archive data.tgz holding one folder data/ becomes target itself, not target/data
        source = (os.path.join(tmp, inner[0])
                  if len(inner) == 1 and os.path.isdir(os.path.join(tmp, inner[0])) else tmp)
        os.replace(source, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        _remove(archive)
        raise ValueError(f"cannot unpack '{archive}' ({exc}); it was deleted and nothing was "
                         "unpacked") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
