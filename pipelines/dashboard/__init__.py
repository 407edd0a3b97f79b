"""The live SLA wallboard: a web page over the job's result tables.

    python -m pipelines.dashboard --sqlite_path=output/contact_center.db

Reads the tables read-only (SQLite or Cassandra, pipelines/dashboard/
stores.py), computes the numbers (pipelines/dashboard/queries.py) and serves
one page that updates itself (pipelines/dashboard/server.py, static/).
"""
