"""Pipeline options for the NICE CXone start-up check.

In: command-line flags (``--cxone_*``, ``--validate_cxone``).
Out: a ``CxoneOptions`` view that ``clients.cxone.CxoneConfig.from_options``
turns into a client configuration.

The client secret is deliberately not an option: flags end up in shell
history, process listings and the serialized pipeline options shipped to
workers. Only the *name* of the environment variable holding it is a flag.
"""

from apache_beam.options.pipeline_options import PipelineOptions

DEFAULT_SECRET_ENV = 'CXONE_CLIENT_SECRET'


class CxoneOptions(PipelineOptions):
  """Options for validating the CXone Data Action before job submission."""

  @classmethod
  def _add_argparse_args(cls, parser) -> None:
    group = parser.add_argument_group('CXone start-up check')
    group.add_argument(
      '--validate_cxone',
      action='store_true',
      default=False,
      help=(
        'Before submitting the pipeline, fetch an OAuth token from '
        'CXone and check that --cxone_action_id exists and is '
        'readable; refuse to start otherwise. Off by default so '
        'offline runs need no CXone tenant.'
      ),
    )
    group.add_argument(
      '--cxone_base_url',
      default=None,
      help=(
        "Base URL of your tenant's CXone API (scheme and host, as "
        'shown for your region); the client calls '
        '<base>/api/v2/data-actions/<id>. Required with '
        '--validate_cxone.'
      ),
    )
    group.add_argument(
      '--cxone_token_url',
      default=None,
      help=(
        'Full URL of the CXone OAuth 2.0 token endpoint (client '
        'credentials grant). Required with --validate_cxone.'
      ),
    )
    group.add_argument(
      '--cxone_client_id',
      default=None,
      help=(
        'OAuth client id of the CXone API application; it needs '
        'the data_actions:read scope. Required with '
        '--validate_cxone.'
      ),
    )
    group.add_argument(
      '--cxone_client_secret_env',
      default=DEFAULT_SECRET_ENV,
      help=(
        'Name of the environment variable that holds the OAuth '
        'client secret (the secret itself is never a flag). '
        f'Default: {DEFAULT_SECRET_ENV}.'
      ),
    )
    group.add_argument(
      '--cxone_action_id',
      default=None,
      help=(
        'Id of the CXone Data Action whose events feed the '
        'cxone-data-actions topic. Required with --validate_cxone.'
      ),
    )
    group.add_argument(
      '--cxone_timeout_seconds',
      type=float,
      default=10.0,
      help=('Connect and read timeout of each CXone HTTP request, in seconds. Default: 10.'),
    )
    group.add_argument(
      '--cxone_max_retries',
      type=int,
      default=4,
      help=(
        'Retries per CXone request after HTTP 429, 5xx, timeouts or '
        'connection errors, with exponential backoff and jitter. '
        'Default: 4.'
      ),
    )
