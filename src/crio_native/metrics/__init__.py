"""The daemon's Prometheus metrics: what is counted (collectors.py) and
the endpoint that serves them (server.py).  With metrics off nothing is
made and every hook is one attribute test."""
