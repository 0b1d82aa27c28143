"""HTTP/1 without I/O: ``request`` turns a target into request bytes, ``parse`` (and
``parse_whole``, its whole-buffer fast path) turns bytes into a response head. Pure."""
