"""NovaLink (PowerVM REST API) emulator that pypowervm drives unchanged.

Entry points: ``app.start()`` (in-process, real HTTP) and the
``ibmvirt-novalink-emulator`` console script. See doc/novalink-emulator.md.
"""
