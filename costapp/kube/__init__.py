"""Kubernetes reader: one consistent sample of a cluster, as plain records.

Pure: no Django. ``client.take_sample`` lists the API with paging, ``parse`` turns wire JSON
into the records of ``records``, ``quantity`` parses resource quantities, and
``fake_apiserver`` is a local HTTP stand-in for tests and the benchmark.
"""

