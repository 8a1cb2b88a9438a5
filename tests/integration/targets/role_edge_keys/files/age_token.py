# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test helper: put an older token into the refresher's token file.

Usage: age_token.py LIB_DIR CONFIG SECONDS

Mints, with the code the role installed in LIB_DIR, a token with the refresher's own key and
claims as if it had been issued SECONDS ago, and writes it to the token file named in the
refresher configuration. The refresher must then replace it once it is within the refresh
margin of its expiry, and keep it otherwise. Prints {"token": ..., "exp": ...} as JSON.
"""

from __future__ import absolute_import, division, print_function

import json
import sys
import time


def main():
    lib_dir, config_path, age = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, lib_dir)
    import selfjwt_refresher  # pylint: disable=import-error
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _files, _token

    config = selfjwt_refresher.load_config(config_path)
    key = _token.load_key(path=config["key"]["path"])
    result = _token.mint(key, now=int(time.time()) - age, **selfjwt_refresher.token_options(config))
    _files.write_atomic(config["token_file"]["path"], result.token.encode("ascii"),
                        mode=int(config["token_file"]["mode"], 8), what="token file")
    print(json.dumps({"token": result.token, "exp": result.expires_at}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
