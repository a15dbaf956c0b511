"""The shared layer every rhzmq process stands on: the library (``rhzmq``), the servers
(``broker``, ``worker``, ``gateway``) and the daemon (``rhzmqd``) all import from here, and this
package imports nothing outside itself.

====================  ==============================================================
module                owns
====================  ==============================================================
``protocol``          every byte of the wire format: header, commands, statuses, meta
``pump``              driving a ZeroMQ socket from the event loop; the socket factory
``serialization``     values on the wire (msgpack + cloudpickle, big buffers as frames)
``code``              how code and objects travel: code references, object specs
``client``            the asyncio broker client (stubs, the gateway and daemons use it)
``curve``             CURVE key files
``config``            where state lives (``RHZMQ_HOME``), state files, pids
``limits``            configurable limits and their errors
``exceptions``        the one exception tree (re-exported as ``rh.*``)
``output``            showing a remote call's output and log records locally
``build``             the exact build a process runs (hash of the sources) and its wheel
``types``, ``version``  shared vocabulary and version numbers
====================  ==============================================================
"""
