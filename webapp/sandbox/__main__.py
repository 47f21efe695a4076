"""`python -m webapp.sandbox [--host 127.0.0.1] [--port 5001] [--instance instance] [--plain-http]`:
serve the Microsoft 365 sandbox tenant (see `serve.py`)."""

import argparse

from .serve import serve

parser = argparse.ArgumentParser(prog="python -m webapp.sandbox", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=5001)
parser.add_argument("--instance", default="instance", help="folder for sandbox.sqlite3, sandbox-tls/, sandbox.env")
parser.add_argument("--plain-http", action="store_true", help="serve plain HTTP (tests with a rewriting client)")
arguments = parser.parse_args()
serve(arguments.host, arguments.port, arguments.instance, plain_http=arguments.plain_http)
