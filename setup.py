"""Contact-center streaming analytics on Apache Beam (Python SDK)."""

import setuptools

BEAM_VERSION = '2.77.0'

# The scripts that talk to Kafka from Python (scripts/produce_events.py, the
# secured stack's setup, the benchmarks) and the tests; the pipeline itself
# reaches Kafka only through Beam's KafkaIO.
KAFKA_TOOLS = ['kafka-python>=2.0.2,<4']

setuptools.setup(
  name='contact-center-analytics',
  version='0.1.0',
  description=(
    'Beam pipelines for contact-center queues: abandon rate per queue, '
    'interaction volume per channel, callback-pattern alerts.'
  ),
  python_requires='>=3.10,<3.13',
  packages=setuptools.find_packages(
    include=[
      'pipelines',
      'pipelines.*',
      'transforms',
      'transforms.*',
      'options',
      'options.*',
      'clients',
      'clients.*',
    ]
  ),
  package_data={
    'transforms.cassandra': ['cql/*.cql'],
    # The Kafka login check run at launch (clients/kafka_check.py).
    'clients': ['*.java'],
    # The wallboard's page, script, styles and the vendored uPlot.
    'pipelines.wallboard': ['static/*', 'static/vendor/*'],
  },
  install_requires=[
    f'apache-beam=={BEAM_VERSION}',
    'cassandra-driver>=3.29,<4',
    'requests>=2.31,<3',
    # The --alert_rules file (options/alert_config.py).
    'PyYAML>=6,<7',
    # IANA time zones for --timezone where the system has no zoneinfo.
    'tzdata',
  ],
  # Exact versions of everything, for reproducible installs:
  # constraints.txt (scripts/setup.sh installs from it; docs/testing.md
  # says how to regenerate it).
  extras_require={
    # py-spy samples the SDK workers (docs/benchmarks.md, "Profiling").
    'tools': KAFKA_TOOLS + ['py-spy>=0.4,<0.5'],
    'test': KAFKA_TOOLS
    + [
      'pytest>=8,<10',
      'pytest-timeout>=2.3,<3',
      'dockerfile-parse>=2,<3',
      'hypothesis>=6.100,<7',
      # Drives the system's chromium/chromedriver
      # (scripts/stack/install_browser.sh) in the wallboard's page tests.
      'selenium>=4.20,<5',
      # A real SMTP server with STARTTLS for the alert e-mail tests
      # (tests/support/receivers.py).
      'aiosmtpd>=1.4,<2',
      # Lint and format, run by scripts/test.sh before the tests.
      'ruff>=0.14,<1',
    ],
  },
)
