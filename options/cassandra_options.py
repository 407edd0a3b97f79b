"""Options of the Cassandra sink (`--sink=cassandra`)."""

from apache_beam.options.pipeline_options import PipelineOptions

# cassandra.ConsistencyLevel names that make sense for writes; listed here so
# that --help works without importing the driver.
WRITE_CONSISTENCY_LEVELS = (
  'ANY',
  'ONE',
  'TWO',
  'THREE',
  'QUORUM',
  'ALL',
  'LOCAL_QUORUM',
  'EACH_QUORUM',
  'LOCAL_ONE',
)


class CassandraOptions(PipelineOptions):
  """Where and how the Cassandra sink writes."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('cassandra sink')
    group.add_argument(
      '--cassandra_hosts',
      default='127.0.0.1',
      help='Comma-separated contact points (host names or addresses).',
    )
    group.add_argument(
      '--cassandra_port', type=int, default=9042, help='Native-protocol (CQL) port.'
    )
    group.add_argument(
      '--cassandra_keyspace',
      default='cxone_analytics',
      help='Keyspace of the result tables; created with the versioned CQL '
      'schema when the job starts.',
    )
    group.add_argument(
      '--cassandra_replication',
      default="{'class': 'SimpleStrategy', 'replication_factor': 1}",
      help='CQL replication map used only when the keyspace does not exist '
      "yet; in production e.g. \"{'class': 'NetworkTopologyStrategy', "
      "'dc1': 3}\".",
    )
    group.add_argument(
      '--cassandra_consistency',
      choices=WRITE_CONSISTENCY_LEVELS,
      default='LOCAL_QUORUM',
      help='Consistency level of the writes. LOCAL_QUORUM survives one '
      'replica down with RF=3 and equals ONE on a single node.',
    )
    group.add_argument(
      '--cassandra_username',
      default=None,
      help='User name for password authentication (none: no '
      'authentication). The password is read from the environment, see '
      '--cassandra_password_env.',
    )
    group.add_argument(
      '--cassandra_password_env',
      default='CASSANDRA_PASSWORD',
      help='Name of the environment variable holding the password; it must '
      'be set where the job is launched and on every worker. The password '
      'itself is never an option, so it cannot leak into the job graph.',
    )
    group.add_argument(
      '--cassandra_ssl_ca_file',
      default=None,
      help="PEM file of the CA that signed the nodes' certificates; enables "
      'TLS with certificate and host-name verification.',
    )
    group.add_argument(
      '--cassandra_ssl_cert_file',
      default=None,
      help='PEM client certificate (chain), for nodes that require client '
      'certificates (require_client_auth); needs --cassandra_ssl_ca_file. '
      'The file must exist at this path on every worker.',
    )
    group.add_argument(
      '--cassandra_ssl_key_file',
      default=None,
      help='PEM private key of --cassandra_ssl_cert_file (unencrypted; '
      'protect it by file permissions); default: the key inside the '
      'certificate file.',
    )
    group.add_argument(
      '--cassandra_ssl_server_hostname',
      default=None,
      help="Name the nodes' certificates must carry, for certificates "
      'issued to a DNS name while --cassandra_hosts are addresses (or '
      'another name); default: the address connected to.',
    )
    group.add_argument(
      '--cassandra_protocol_version',
      type=int,
      default=None,
      help='Native protocol version to use (e.g. 5 for Cassandra 4.0 and '
      'later, 4 for 3.x); default: negotiated with the nodes.',
    )
    group.add_argument(
      '--cassandra_local_dc',
      default=None,
      help='Data center whose nodes coordinate the writes (LOCAL_* '
      'consistency levels refer to it); default: the data center of the '
      'first contact point.',
    )
    group.add_argument(
      '--cassandra_write_concurrency',
      type=int,
      default=32,
      help='Requests in flight at once per writer (DoFn instance): a row, or up to 100 rows '
      'of one partition in one unlogged batch.',
    )
    group.add_argument(
      '--cassandra_max_retries',
      type=int,
      default=10,
      help='Retries of writes failing with a timeout or an unavailable '
      'cluster, with exponential backoff (1 s doubling up to 20 s, '
      'jittered): the default rides out at least a minute of outage. After '
      'that the bundle fails and the runner retries it.',
    )
