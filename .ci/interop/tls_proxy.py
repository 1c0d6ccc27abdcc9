"""A TLS-terminating TCP proxy in front of the gateway, as a user's TLS proxy would be.

Clients behave differently over https: botocore and awscli send streaming bodies as
`aws-chunked` with STREAMING-UNSIGNED-PAYLOAD-TRAILER and the checksum in a trailer only when
the endpoint is https, so the suites reach that path through this proxy. Bytes are relayed
unchanged (the Host header the client signed reaches the gateway as it was).

Usage: tls_proxy.py CERT KEY BACKEND_PORT — listens on 127.0.0.1 on a free port, prints
`tls proxy listening on 127.0.0.1:PORT` and serves until killed.
"""

import asyncio
import ssl
import sys

BUFFER = 256 * 1024


async def relay(reader, writer):
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, ssl.SSLError, OSError):
        pass


async def serve_one(backend_port, client_reader, client_writer):
    try:
        backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", backend_port)
    except OSError:
        client_writer.close()
        return
    upstream = asyncio.create_task(relay(client_reader, backend_writer))
    # The exchange is over when the gateway closes its side (after the client's EOF, or on
    # its own, e.g. an idle keep-alive connection): the client must then see the close.
    await relay(backend_reader, client_writer)
    upstream.cancel()
    for w in (backend_writer, client_writer):
        try:
            w.close()
        except (ConnectionError, ssl.SSLError, OSError):
            pass


async def main(cert, key, backend_port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(lambda r, w: serve_one(backend_port, r, w), "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    print(f"tls proxy listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
