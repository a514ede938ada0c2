"""The composition layer: where capabilities meet, and nothing below reaches up.

A capability (backup, chaos, canary, checklist, runbooks, ...) knows core and
itself. Some code needs several of them at once, or needs what only the layer
above knows (the Invoke namespace): the demo runs every capability's drill on
the lab, the checklist validates its evidence against the drill tasks and the
audits' registry. That code lives here and is *handed* the namespace by the
tasks layer instead of importing it, so no arrow points back up
(tests/test_layers.py keeps it so).

- :mod:`~drillbook.app.demo`: ``inv demo``, every drill once on the lab;
- :mod:`~drillbook.app.canaries`: the demo's good and bad canary (builds lab releases);
- :mod:`~drillbook.app.registry`: the drill tasks of a namespace and the audits' checks,
  as the checklist names them.
"""
