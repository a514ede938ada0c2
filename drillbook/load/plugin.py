"""drillbook's Locust plugin: pass it with ``-f`` before any locustfile to pace it as an open model.

    locust -f drillbook/load/plugin.py,locustfile.py --headless \\
        --drillbook-rps 120 --drillbook-ramp 10 --drillbook-duration 60 --host http://127.0.0.1:15480

``inv load.run`` does exactly this. The plugin defines no users: it adds the
``--drillbook-*`` options, the :class:`ArrivalRateShape` load shape and the
listeners described in ``shape.py``, and gives every user class of the other
locustfiles the paced ``wait_time``. Kept apart from ``shape.py`` so that importing
the shape's code (tests, docs) does not register listeners.
"""

from drillbook.load.shape import ArrivalRateShape, install

__all__ = ["ArrivalRateShape"]

install()
