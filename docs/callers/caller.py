"""Call an API protected by selfjwt.kyma with the token that the edge host's refresher keeps fresh.

Python 3 standard library only. Usage:
    SELFJWT_TOKEN_FILE=/var/lib/selfjwt/token python3 caller.py URL [URL ...]
Prints each response body; on an error prints what to do on stderr and exits 1.
"""

import os
import sys
import urllib.error
import urllib.request

TOKEN_FILE = os.environ.get("SELFJWT_TOKEN_FILE", "/var/lib/selfjwt/token")


class CallerError(Exception):
    pass


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never send the token on to wherever a redirect points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def read_token():
    # Read the file for every call, never once per process: the refresher replaces the token
    # before it expires and when the key rotates, so a kept token expires or names a retired key.
    try:
        with open(TOKEN_FILE, encoding="ascii") as handle:
            token = handle.read().strip()
    except FileNotFoundError:
        raise CallerError("token file %s does not exist: run the selfjwt.kyma.edge_keys role on this host "
                          "or set SELFJWT_TOKEN_FILE" % TOKEN_FILE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CallerError("cannot read token file %s (%s): this user must be in the token file's group "
                          "(edge_keys_token_group)" % (TOKEN_FILE, exc)) from None
    if not token:
        raise CallerError("token file %s is empty: run selfjwt-token as the key's owner" % TOKEN_FILE)
    return token


def get(url, token):
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    try:
        with OPENER.open(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CallerError("cannot reach %s: %s" % (url, getattr(exc, "reason", exc))) from None


def call(url):
    token = read_token()
    status, body = get(url, token)
    if status == 401:
        fresh = read_token()
        if fresh != token:
            # The refresher replaced the token after it was read: retry once with the new one.
            status, body = get(url, fresh)
    if status == 401:
        raise CallerError("%s answered 401 (%s): the token in %s is expired or its key is not published; "
                          "check that the refresher runs (selfjwt-token --json)" % (url, body.strip()[:200], TOKEN_FILE))
    if status == 403:
        raise CallerError("%s answered 403 (%s): the token is valid but the API's rules do not allow this call "
                          "(audience, scopes, path or method)" % (url, body.strip()[:200]))
    if not 200 <= status < 300:
        raise CallerError("%s answered %d (%s)" % (url, status, body.strip()[:200]))
    return body


def main(urls):
    if not urls:
        sys.stderr.write("usage: python3 caller.py URL [URL ...]\n")
        return 2
    try:
        for url in urls:
            print(call(url))
    except CallerError as exc:
        sys.stderr.write("caller: %s\n" % exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
