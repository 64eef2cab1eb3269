#!/usr/bin/env python3
"""Logs in through a controller as a browser would, with nothing but HTTP:
first request to the workspace, every redirect followed by hand, the
OpenID provider's login and consent forms (tests/support/oidc, which accepts
any login) submitted, until the workspace answers 2xx at the URL first
asked for. Standard library only.

    bench/login.py URL [--times N] [--user U] [--ca FILE]
                   [--resolve HOST:PORT:ADDR ...] [--cookie NAME]

Prints one JSON line: the redirects and form posts of one login, the wall
time of each login (ms), and with --cookie the Cookie header pair of that
name from the last login (the session the load rows then send).
"""

import argparse
import html.parser
import http.cookiejar
import json
import re
import socket
import ssl
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class Form(html.parser.HTMLParser):
    """The first form of a page: its action, method and fields."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.method = "get"
        self.fields = []
        self.names = []
        self.done = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None and not self.done:
            self.action = a.get("action", "")
            self.method = (a.get("method") or "get").lower()
        elif tag == "input" and self.action is not None and not self.done:
            if a.get("name"):
                self.names.append(a["name"])
                if a.get("type") == "hidden":
                    self.fields.append((a["name"], a.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form" and self.action is not None:
            self.done = True


# The gate's hand-over page (session.transfer: fragment) names its cookie and
# next address in data- attributes of its <html> tag.
HANDOVER = re.compile(
    r'<html[^>]*data-workspace-gate-handover[^>]*data-cookie="(?P<cookie>[^"]+)"[^>]*data-next="(?P<next>[^"]+)"')


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def login(start, user, context):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        NoRedirect(),
        urllib.request.HTTPCookieProcessor(jar),
        urllib.request.HTTPSHandler(context=context),
    )
    url, data, redirects, posts = start, None, 0, 0
    t0 = time.perf_counter()
    for _ in range(30):
        req = urllib.request.Request(url, data=data, headers={"Accept": "text/html"})
        try:
            resp = opener.open(req, timeout=10)
        except urllib.error.HTTPError as e:
            resp = e
        body = resp.read().decode("utf-8", "replace")
        status = resp.status if hasattr(resp, "status") else resp.code
        data = None
        if 300 <= status < 400:
            redirects += 1
            url = urllib.parse.urljoin(url, resp.headers["Location"])
            continue
        handover = HANDOVER.search(body)
        if handover and "#t=" in url:
            # What the gate's hand-over page script does: the token from the
            # fragment into the named cookie, then on to the next address.
            url, token = url.split("#t=", 1)
            host = urllib.parse.urlsplit(url).hostname
            jar.set_cookie(http.cookiejar.Cookie(
                0, handover["cookie"], token, None, False, host, False, False,
                "/", True, url.startswith("https:"), None, False, None, None, {}))
            url = urllib.parse.urljoin(url, html.unescape(handover["next"]))
            continue
        if status >= 400:
            sys.exit(f"login: {url} answered {status}: {body[:300]}")
        if url == start:
            return time.perf_counter() - t0, redirects, posts, jar
        form = Form()
        form.feed(body)
        if form.action is None:
            sys.exit(f"login: {url} answered {status} without a form: {body[:300]}")
        fields = list(form.fields)
        if "login" in form.names:
            fields += [("login", user), ("password", "x")]
        url = urllib.parse.urljoin(url, form.action)
        encoded = urllib.parse.urlencode(fields)
        if form.method == "post":
            data, posts = encoded.encode(), posts + 1
        else:
            url = f"{url}?{encoded}"
    sys.exit(f"login: no landing on {start} after 30 hops")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--times", type=int, default=1)
    ap.add_argument("--user", default="user1")
    ap.add_argument("--ca")
    ap.add_argument("--resolve", action="append", default=[])
    ap.add_argument("--cookie")
    args = ap.parse_args()
    # Like curl --resolve: these host:port pairs connect to the given address.
    pinned = {}
    for r in args.resolve:
        host, port, addr = r.split(":")
        pinned[(host, int(port))] = addr
    connect = socket.create_connection

    def create_connection(address, *a, **kw):
        host, port = address
        return connect((pinned.get((host, int(port)), host), port), *a, **kw)

    socket.create_connection = create_connection
    context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    times, jar = [], None
    for _ in range(args.times):
        secs, redirects, posts, jar = login(args.url, args.user, context)
        times.append(secs * 1000)
    out = {
        "redirects": redirects,
        "posts": posts,
        "ms_median": round(statistics.median(times), 2),
        "ms": [round(t, 2) for t in times],
    }
    if args.cookie:
        out["cookie"] = next(f"{c.name}={c.value}" for c in jar if c.name == args.cookie)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
