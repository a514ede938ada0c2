"""refservice: the reference web service drillbook's lab deploys and drills against.

A small FastAPI items API over PostgreSQL with Redis as a cache, plus the
health, metrics and fault knobs drills need. It imports nothing from drillbook
and drillbook never imports it; the two meet over HTTP, SQL and the lab's
release directories. See lab/README.md.
"""
