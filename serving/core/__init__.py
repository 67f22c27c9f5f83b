"""The one re-ranking core every request goes through (compiled with numba).

* ``arrays``: what the core reads (a version, the config, a request, a customer's state)
  as named tuples of arrays, and how they are built;
* ``pipeline``: the steps (read -> seeds -> pool -> keep -> pick, with MMR and the
  cold-start chain), compiled;
* ``writer``: the JSON of the answer, compiled;
* ``run``: calling it for one request or an email batch.
"""
