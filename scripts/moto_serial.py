"""moto's server, handling one request at a time.

moto's usual (threaded) server races on concurrent transactions and answers some of them
with 500s; the concurrency and fault tests need a DynamoDB that is wrong only when they make
it so. Usage: moto_serial.py HOST PORT
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=False)


if __name__ == "__main__":
    main()
