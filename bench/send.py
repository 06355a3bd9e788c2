#!/usr/bin/env python3
"""Sends an exact number of pre-signed deliveries (bench-presign's wrk files)
over HTTPS/1.1 keep-alive connections, and fails unless every answer is 2xx.

bench/profile.sh uses it instead of wrk: a profile under callgrind needs a
fixed count of requests, not a fixed duration, so that the instructions can
be divided by the deliveries. Its own speed does not matter there: the
server under valgrind is the slow side by far.

  send.py --url https://127.0.0.1:8443/ --cacert tls.crt --template body.tmpl \
          --lines requests.tsv --skip 0 --count 2000 --connections 16
"""

import argparse
import http.client
import ssl
import sys
import threading
import urllib.parse

PLACEHOLDER = "@DELIVERY_ID@"


def requests(template, lines_path, skip, count):
    """The (headers, body) of lines skip .. skip+count of the wrk file."""
    head, tail = template.split(PLACEHOLDER, 1)
    out = []
    with open(lines_path, encoding="utf-8") as lines:
        for n, line in enumerate(lines):
            if n < skip:
                continue
            if len(out) == count:
                break
            fields = line.rstrip("\n").split("\t")
            headers = dict(field.split(": ", 1) for field in fields[1:])
            out.append((headers, (head + fields[0] + tail).encode()))
    if len(out) < count:
        sys.exit(f"send.py: {lines_path} holds {len(out)} requests after {skip}, not {count}")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--cacert", required=True)
    parser.add_argument("--template", required=True)
    parser.add_argument("--lines", required=True)
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    context = ssl.create_default_context(cafile=args.cacert)
    with open(args.template, encoding="utf-8") as f:
        template = f.read()
    todo = requests(template, args.lines, args.skip, args.count)
    statuses = {}
    lock = threading.Lock()

    def worker(share):
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=120)
        for headers, body in share:
            conn.request("POST", url.path or "/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            with lock:
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    threads = [
        threading.Thread(target=worker, args=(todo[k :: args.connections],))
        for k in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    if ok != args.count:
        sys.exit(f"send.py: {ok} of {args.count} answered 2xx: {statuses}")
    print(ok)


if __name__ == "__main__":
    main()
