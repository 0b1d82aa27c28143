"""One target over the network: ``one.fetch_one`` resolves (``resolve``), connects, tunnels
(``connection``: proxies, TLS), writes the request and reads the head, all under one deadline
(``deadline``); ``redirects`` follows ``-L`` hop by hop. The only socket code."""
