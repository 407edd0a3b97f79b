"""The live SLA wallboard: a web page over the job's result tables.

    python -m pipelines.wallboard --sqlite_path=output/contact_center.db

Reads the tables read-only (SQLite or Cassandra, pipelines/wallboard/
stores.py), computes the numbers (pipelines/wallboard/queries.py) and serves
one page that updates itself (pipelines/wallboard/server.py, static/).
"""
