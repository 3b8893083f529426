"""The asyncio echo server: start_server, reader.read, writer.write, drain.

Usage: echo_asyncio.py PORT [--uvloop]   (listens on 127.0.0.1)

With --uvloop the same code runs on uvloop's event loop; it exits with
status 3 if uvloop cannot be imported.
"""
import asyncio
import sys

READ_SIZE = 65536


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main():
    args = sys.argv[1:]
    use_uvloop = "--uvloop" in args
    args = [a for a in args if a != "--uvloop"]
    if len(args) != 1 or not args[0].isdigit():
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            print("echo_asyncio.py: uvloop is not installed", file=sys.stderr)
            return 3
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(int(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
