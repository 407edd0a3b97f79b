"""Alerting's frozen configuration: the receivers notifications go to and
the rules (AlertOptions, the `--alert_rules` file; docs/alerts.md).

A receiver names where its secrets are, never holds them: a webhook URL
(Slack's holds its token), an HMAC key and SMTP credentials are read from
the environment by the sender, when it sends (clients/alert_receivers.py).
"""

import dataclasses
from typing import Tuple

WEBHOOK = 'webhook'
SLACK = 'slack'
EMAIL = 'email'
RECEIVER_KINDS = (WEBHOOK, SLACK, EMAIL)


@dataclasses.dataclass(frozen=True)
class ReceiverConfig:
  """One receiver of the rule file's `receivers:` section.

  `kind`: webhook, slack or email. webhook and slack: `url_env`, the
  environment variable holding the URL; webhook: `secret_env`, the one
  holding the HMAC-SHA256 key of its `X-Signature` header ('' for none).
  email: `smtp_host`, `smtp_port`, `sender`, `recipients`, STARTTLS unless
  `starttls` is False (loopback test servers only), and `username_env`,
  `password_env` naming the credentials' variables ('' for none).
  """

  name: str
  kind: str
  url_env: str = ''
  secret_env: str = ''
  smtp_host: str = ''
  smtp_port: int = 587
  sender: str = ''
  recipients: Tuple[str, ...] = ()
  username_env: str = ''
  password_env: str = ''
  starttls: bool = True
