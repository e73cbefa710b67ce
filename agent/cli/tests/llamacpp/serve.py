"""Runs llama.cpp's HTTP server (llama-server's API, from the xllamacpp package) on one GGUF.

Usage: serve.py MODEL.gguf PORT [CONTEXT]

Listens on 127.0.0.1:PORT with two slots and prompt caching, prints `listening on URL` once it
answers, and serves until it is killed or its standard input closes.
"""

import sys

import xllamacpp


def main():
    model, port = sys.argv[1], int(sys.argv[2])
    context = int(sys.argv[3]) if len(sys.argv) > 3 else 8192
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = context
    params.n_parallel = 2
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    server = xllamacpp.Server(params)
    print(f"listening on {server.listening_address}", flush=True)
    # The server lives as long as this process; a parent that goes away closes stdin.
    sys.stdin.read()


if __name__ == "__main__":
    main()
