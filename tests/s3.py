"""An S3 API on 127.0.0.1 for the tests and benchmarks: moto's ``ThreadedMotoServer`` (package ``moto[server]``).

Why moto: it is a pip package from the registry (MinIO would be a binary download), it serves the real S3
HTTP API in a thread of this process, so that s3fs, pyarrow, DuckDB's registered filesystem and other
processes (Dask workers, a second ``lessonlens query``) reach it through ``AWS_ENDPOINT_URL`` like any
S3 endpoint, and it implements the conditional writes the store's lease needs (``If-None-Match: *`` and
``If-Match`` on PutObject, checked by ``tests/test_object_store.py``). Its credentials are dummies.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextmanager
def s3_server(buckets: tuple[str, ...] = ()) -> Iterator[str]:
    """Start the server on a free port of 127.0.0.1 with ``buckets``, export its URL as ``AWS_ENDPOINT_URL`` (and
    dummy credentials) for this process and the processes it starts; yield the URL; restore the environment."""
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in (*ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(ENV, AWS_ENDPOINT_URL=url)
    try:
        fs = s3fs.S3FileSystem(use_listings_cache=False)
        for bucket in buckets:
            fs.mkdir(bucket)
        yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
