"""The HTTP side of runlock: a client of ``runlock server`` (``RUNLOCK_SERVER=http://host:port``).

``interface.Service`` is what the surfaces ask of a store: ``local.LocalService`` answers from a
store opened here, ``http.HttpService`` from a server (``objects.ServerObjects`` moves the bytes,
by sha256); tests/server/test_conformance.py holds both to the same answers.
``client.Client`` speaks the server's ``/api/v1``; ``run.RemoteRun`` is what ``start_run``
returns when a server is configured (``run.log`` spools to local SQLite and a background thread
ships batches); ``credentials`` keeps the token of ``runlock login URL``. Nothing here imports
the CLI or the server. Importing this package loads nothing: ``httpx`` and ``msgpack`` (the
``server`` extra) load with ``runlock.remote.client``, only when a server is configured.
"""
