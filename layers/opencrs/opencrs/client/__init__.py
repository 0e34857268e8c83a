"""``opencrs``: a command-line client that signs and sends EasyAR-compatible requests.

Endpoint and keys come from flags (``--endpoint``, ``--app-id``, ``--api-key``,
``--app-key``, ``--token``) or the environment (``OPENCRS_ENDPOINT``, ``OPENCRS_APP_ID``,
``OPENCRS_API_KEY``, ``OPENCRS_API_SECRET``, ``OPENCRS_APP_KEY``, ``OPENCRS_APP_SECRET``,
``OPENCRS_TOKEN``), else from a JSON config file (``OPENCRS_CONFIG``, ``./.opencrs.json`` —
written by ``make run`` — or ``~/.config/opencrs/config.json``) with keys ``endpoint``,
``appId``, ``apiKey``, ``apiSecret``, ``appKey``, ``appSecret``. An API key signs when
all three of its parts are known, else the legacy appKey pair; a token is sent as is.

HTTP goes through :mod:`urllib` only: this package and :mod:`opencrs.wire` import nothing
outside the standard library (``tqdm``, the ``cli`` extra, adds a progress bar to bulk
imports and is optional). Secrets, tokens and request signatures are never logged, not
even with ``--verbose``.

Used alone, without the server's numpy/OpenCV/boto3: the ``opencrs`` distribution
declares those as dependencies, so install it with ``pip install --no-deps .`` (plus
``pip install tqdm`` for the bar), or copy ``opencrs/__init__.py``, ``opencrs/wire.py``
and ``opencrs/client/`` onto ``sys.path``; then run ``opencrs`` or
``python -m opencrs.client``.

Modules: ``config`` (where keys are found), ``http`` (``Client``, ``Response``, retries),
``bulk`` (``targets add``), ``events`` (re-signing API Gateway events), ``commands``
(argparse and ``main``).
"""

from opencrs.client.bulk import AddFields, AddOutcome, ImportReport, collect_images, run_import
from opencrs.client.commands import main
from opencrs.client.config import load_config
from opencrs.client.events import resign_event
from opencrs.client.http import Client, Response, TransportError

__all__ = [
    "AddFields",
    "AddOutcome",
    "Client",
    "ImportReport",
    "Response",
    "TransportError",
    "collect_images",
    "load_config",
    "main",
    "resign_event",
    "run_import",
]
