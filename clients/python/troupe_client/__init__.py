"""Python client of troupe (pyzmq + msgpack).

    from troupe_client import Client, AsyncClient, TroupeError

See clients/python/README.md.
"""
from ._proto import Choice, Delta, Result, TroupeError, TroupeTimeout
from .aio import AsyncClient, AsyncStream
from .client import DEFAULT_ENDPOINT, Client, Stream

__version__ = '0.1.0'
__all__ = ['Client', 'AsyncClient', 'Stream', 'AsyncStream', 'Result', 'Choice', 'Delta',
           'TroupeError', 'TroupeTimeout', 'DEFAULT_ENDPOINT']
