"""`python -m pipelines.dashboard`: the wallboard's old entry point, kept for
one release; it says so in one line and runs `python -m pipelines.wallboard`
(pipelines/wallboard/__main__.py) with the same arguments."""

import logging

from pipelines.wallboard.__main__ import main

if __name__ == '__main__':
  logging.getLogger(__name__).warning(
    'python -m pipelines.dashboard is deprecated, use python -m pipelines.wallboard'
  )
  main()
