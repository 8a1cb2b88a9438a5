"""The same caller with requests (pip install requests): read the token file for every call.

Usage:
    SELFJWT_TOKEN_FILE=/var/lib/selfjwt/token python3 caller_requests.py URL [URL ...]
"""

import os
import sys

import requests

TOKEN_FILE = os.environ.get("SELFJWT_TOKEN_FILE", "/var/lib/selfjwt/token")


class CallerError(Exception):
    pass


class Bearer(requests.auth.AuthBase):
    """The token as auth=, not headers=: requests would replace that header with ~/.netrc credentials."""

    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = "Bearer " + self.token
        return request


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
    try:
        # No redirects: the token would go on to wherever the redirect points.
        return requests.get(url, auth=Bearer(token), timeout=30, allow_redirects=False)
    except requests.RequestException as exc:
        raise CallerError("cannot reach %s: %s" % (url, exc)) from None


def call(url):
    token = read_token()
    response = get(url, token)
    if response.status_code == 401:
        fresh = read_token()
        if fresh != token:
            # The refresher replaced the token after it was read: retry once with the new one.
            response = get(url, fresh)
    status, body = response.status_code, response.text.strip()[:200]
    if status == 401:
        raise CallerError("%s answered 401 (%s): the token in %s is expired or its key is not published; "
                          "check that the refresher runs (selfjwt-token --json)" % (url, body, TOKEN_FILE))
    if status == 403:
        raise CallerError("%s answered 403 (%s): the token is valid but the API's rules do not allow this call "
                          "(audience, scopes, path or method)" % (url, body))
    if not 200 <= status < 300:
        raise CallerError("%s answered %d (%s)" % (url, status, body))
    return response.text


def main(urls):
    if not urls:
        sys.stderr.write("usage: python3 caller_requests.py URL [URL ...]\n")
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
