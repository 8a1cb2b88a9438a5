# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Entry point: ``python -m tools.kyma_standin ...`` or ``python tools/kyma_standin ...``."""

import os
import sys

if __package__:
    from .cli import main
else:  # run as a directory: make the package importable by its own name
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from kyma_standin.cli import main  # pylint: disable=import-error

sys.exit(main())
